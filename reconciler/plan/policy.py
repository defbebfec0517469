"""Selection and write policy: glob matching, owned keys, and the dict a file should end up with. Pure."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from reconciler.model import Assignment, Mode

if TYPE_CHECKING:
    from reconciler.types import JsonValue, MetadataView

__all__ = ["compile_glob", "desired_dict", "owned_keys"]


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A path-aware glob: ``*`` and ``?`` stay within one path segment, ``**`` crosses ``/``, ``[...]`` as fnmatch.

    So ``cam*.mp4`` matches ``cam01.mp4`` but not ``sub/cam01.mp4``; ``**/cam*.mp4`` and ``scan-07/*`` do
    what they read as.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if j == -1:
                out.append(re.escape(ch))
                i += 1
            else:
                part = fnmatch.translate(pattern[i : j + 1])
                out.append(part[len("(?s:") : -len(r")\Z")])
                i = j + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def owned_keys(
    mode: Mode, owns: Iterable[str], given: Mapping[str, Assignment], live: MetadataView
) -> frozenset[str] | None:
    """The keys a manifest manages on one file; ``None`` means all of them (overwrite)."""
    if mode is Mode.OVERWRITE:
        return None
    keys = set(given)
    patterns = tuple(owns)
    if patterns:
        keys.update(k for k in live if any(fnmatch.fnmatchcase(k, p) for p in patterns))
    return frozenset(keys)


def desired_dict(
    mode: Mode, owned: frozenset[str] | None, given: Mapping[str, Assignment], current: MetadataView
) -> dict[str, JsonValue]:
    """The dict a file ends up with after one manifest's write onto ``current``.

    merge: owned keys become exactly the given values (absent or ``null`` -> removed); other keys are kept.
    overwrite: exactly the given non-null values.
    """
    if mode is Mode.OVERWRITE or owned is None:
        return {k: a.value for k, a in given.items() if a.value is not None}
    out = dict(current)
    for key in owned:
        a = given.get(key)
        if a is None or a.value is None:
            out.pop(key, None)
        else:
            out[key] = a.value
    return out
