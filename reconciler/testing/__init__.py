"""Testing support: an emulator of Encord's v2 public API (:class:`Emulator`), served over real HTTP.

``Emulator`` is imported lazily so that ``python -m reconciler.testing.emulator`` runs without the
"found in sys.modules" warning that an eager import would cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.testing.emulator import Emulator, Faults, Modes

__all__ = ["Emulator", "Faults", "Modes"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from reconciler.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
