"""The ``settings.undeclared_keys`` judgement, one definition for every caller: the loader's offline checks
(``validate``), the planner's manifest values and the streaming planner's source rows.

A key set to a non-null value that the schema does not declare (and that is not reserved) is an error under
``error``, a warning once per key under ``warn``, and nothing under ``allow`` or without a schema. A source
row reports each undeclared key at its first row only. A per-frame value, the plan key ``frames[N].KEY``
(:mod:`reconciler.frames`), is judged by its ``KEY``: declaring ``clip`` declares it on every frame. It lives
below ``manifest/`` and ``plan/`` so both reach it (re-exported by :mod:`reconciler.plan.semantics`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Protocol

from reconciler.errors import Diagnostic
from reconciler.frames import base_key
from reconciler.model import UndeclaredKeys
from reconciler.reserved import RESERVED_KEYS

if TYPE_CHECKING:
    from reconciler.errors import SourceLocation
    from reconciler.types import JsonValue

__all__ = ["UNDECLARED", "UndeclaredJudge"]


#: What an undeclared key is said to be (``validate``, ``plan``).
UNDECLARED = "is not declared in the metadata schema"


class _Row(Protocol):
    """A source row as :meth:`UndeclaredJudge.judge_row` reads it (``manifest.source.SourceRow``)."""

    @property
    def values(self) -> Mapping[str, JsonValue]: ...

    @property
    def location(self) -> SourceLocation: ...


class UndeclaredJudge:
    """The ``settings.undeclared_keys`` judgement: a key set to a non-null value that the schema does not
    declare is an error (``error``), a warning once per key (``warn``), or nothing (``allow``, or no schema).

    ``declared``: the keys that count as declared (the reserved keys always do: :mod:`reconciler.reserved`).
    """

    def __init__(
        self,
        declared: Collection[str],
        policy: UndeclaredKeys,
        active: bool,
        errors: list[Diagnostic],
        warnings: list[Diagnostic],
    ) -> None:
        self.known: set[str] = set(declared) | RESERVED_KEYS
        self.active = active and policy is not UndeclaredKeys.ALLOW
        self.policy = policy
        self.errors = errors
        self.warnings = warnings
        self._warned: set[str] = set()

    def is_declared(self, key: str) -> bool:
        return base_key(key) in self.known

    def judge(self, key: str, value: JsonValue, location: SourceLocation) -> None:
        """Report ``key`` (set to ``value`` at ``location``) if it is undeclared (a per-frame key by its KEY)."""
        key = base_key(key)
        if value is None or key in self.known or not self.active:
            return
        msg = f"key {key!r} {UNDECLARED}"
        if self.policy is UndeclaredKeys.ERROR:
            self.errors.append(Diagnostic(location, msg + " (settings.undeclared_keys: error)"))
        elif key not in self._warned:
            self._warned.add(key)
            self.warnings.append(Diagnostic(location, msg, "warning"))

    def judge_row(self, row: _Row) -> None:
        """Judge the keys of one source row: each undeclared key is reported at its first row only (a
        bulk source repeats its keys on every row). Cheap when every key is known: no location is made."""
        values = row.values
        if self.known.issuperset(values):
            return
        for key, value in values.items():
            if value is not None and key not in self.known:
                self.judge(key, value, row.location)
                self.known.add(key)  # the plan key (frames[13].clip), so the next row's check stays cheap
                self.known.add(base_key(key))
