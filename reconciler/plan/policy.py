"""Glob matching for ``glob:`` selectors (ownership and the write itself: :mod:`reconciler.plan.semantics`). Pure."""

from __future__ import annotations

import fnmatch
import functools
import re

__all__ = ["compile_glob"]


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
