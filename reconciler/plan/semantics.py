"""File semantics, one definition each: ownership, value layering, the desired dict, "unchanged", conflicts,
and (re-exported from :mod:`reconciler.undeclared`, where the loader reaches it too) the ``undeclared_keys``
judgement. Pure.

Every caller goes through here: the streaming planner (:mod:`reconciler.plan.files`), the blast-radius
limits, key renames, and the offline checks ``validate`` runs (:mod:`reconciler.plan.checks`).

* **Ownership.** An overwrite manifest owns every key of the files it selects. A merge manifest owns, on one
  file, the keys it gives that file (a ``null`` value included: it removes the key) and every key matching
  one of its ``owns`` patterns (``fnmatch``, case-sensitive). A per-frame value is the key ``frames[N].KEY``
  (:mod:`reconciler.frames`); a pattern owns it when it matches the whole key (``*``), or its ``KEY``
  (``owns: [clip]`` owns ``clip`` and ``clip`` on every frame, so taking ``clip`` out prunes it on every
  frame too), or when the pattern is itself per-frame, ``frames[F].K``, with ``F`` matching the frame number
  and ``K`` the key (``frames[*].clip``: every frame's ``clip`` but not the file's own; brackets literal).
* **Layering.** The values one manifest gives one file: ``defaults``, then each matching ``glob`` entry in
  order, then the ``source:`` row, then the exact ``name:``/``uuid:`` entry; later layers win key by key.
* **Desired dict.** merge: owned keys become exactly the given values (absent or ``null``: removed), other
  keys are kept. overwrite: exactly the given non-null values.
* **Unchanged.** A file is unchanged when its desired dict equals its live dict (``values_equal``).
* **Conflicts.** Two manifests on one file conflict when either is an overwrite manifest, or when both own
  a key; ``owns`` patterns are matched against the live keys *and* the keys either manifest gives.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.frames import parse_frame_key
from reconciler.model import Assignment, FileManifest, FileSelector, Mode, SelectorKind
from reconciler.plan.differ import values_equal
from reconciler.plan.policy import compile_glob
from reconciler.undeclared import UNDECLARED, UndeclaredJudge

if TYPE_CHECKING:
    from reconciler.types import JsonValue, MetadataView

__all__ = [
    "UNDECLARED",
    "CompiledManifest",
    "UndeclaredJudge",
    "compiled",
    "conflict",
    "owns_test",
    "plain_values",
]

_ABSENT: Any = object()
T = TypeVar("T")

# --------------------------------------------------------------------------------------------- owns patterns

#: A per-frame ``owns`` pattern: ``frames[F].K`` (``F`` a pattern of frame numbers, ``K`` of keys).
_FRAME_PATTERN = re.compile(r"frames\[([^\]]+)\]\.(.+)", re.DOTALL)


def _frame_pattern(pattern: str) -> tuple[str, str] | None:
    m = _FRAME_PATTERN.fullmatch(pattern)
    return (m.group(1), m.group(2)) if m else None


def owns_test(patterns: tuple[str, ...]) -> Callable[[str], bool] | None:
    """The ownership rule of ``owns`` patterns as one test of a key (``None`` without patterns): ``fnmatch`` on
    the whole key; for a per-frame key ``frames[N].KEY`` also on ``KEY``, and ``frames[F].K`` patterns on the
    frame number and the key (see the module's Ownership rule)."""
    if not patterns:
        return None
    plain = [p for p in patterns if _frame_pattern(p) is None]
    framed = [
        (re.compile(fnmatch.translate(f)), re.compile(fnmatch.translate(k)))
        for f, k in (fp for fp in map(_frame_pattern, patterns) if fp is not None)
    ]
    whole = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in plain)) if plain else None

    def owns(key: str) -> bool:
        if whole is not None and whole.match(key):
            return True
        if not key.startswith("frames["):
            return False
        parsed = parse_frame_key(key)
        if parsed is None:
            return False
        frame, name = str(parsed[0]), parsed[1]
        if whole is not None and whole.match(name):
            return True
        return any(f.match(frame) and k.match(name) for f, k in framed)

    return owns


def _patterns_overlap(pa: str, pb: str) -> bool:
    """Whether two ``owns`` patterns can own one key (the offline check, which sees no live keys)."""
    if pa == pb or fnmatch.fnmatchcase(pa, pb) or fnmatch.fnmatchcase(pb, pa):
        return True
    fa, fb = _frame_pattern(pa), _frame_pattern(pb)
    if fa is None and fb is None:
        return False
    # A plain pattern owns a per-frame key by its KEY part: compare it with the key part of the other.
    ka = fa[1] if fa is not None else pa
    kb = fb[1] if fb is not None else pb
    if fa is not None and fb is not None:
        frames_meet = fa[0] == fb[0] or fnmatch.fnmatchcase(fa[0], fb[0]) or fnmatch.fnmatchcase(fb[0], fa[0])
        if not frames_meet:
            return False
    return ka == kb or fnmatch.fnmatchcase(ka, kb) or fnmatch.fnmatchcase(kb, ka)


def plain_values(given: Mapping[str, Assignment]) -> dict[str, JsonValue]:
    """The values of located assignments."""
    return {k: a.value for k, a in given.items()}


class CompiledManifest:
    """One FileManifest's file semantics, compiled once (globs as regexes, ``owns`` as one memoised regex).

    ``given`` is what this manifest gives one file (:meth:`layer`). :meth:`owns`, :meth:`owned` and
    :func:`conflict` read only its keys (plain or located values alike); :meth:`desired`, :meth:`write` and
    :meth:`is_unchanged` take plain values.
    """

    __slots__ = ("_cache", "_rx", "defaults", "globs", "m", "merge", "patterns", "plain")

    def __init__(self, m: FileManifest) -> None:
        self.m = m
        self.merge = m.mode is Mode.MERGE
        self.patterns: tuple[str, ...] = tuple(m.owns) if self.merge else ()
        self._rx = owns_test(self.patterns)
        self._cache: dict[str, bool] = {}
        self.defaults: dict[str, JsonValue] = plain_values(m.defaults)
        self.globs: list[tuple[re.Pattern[str], FileSelector, dict[str, JsonValue]]] = [
            (compile_glob(s.pattern), s, plain_values(s.metadata))
            for s in m.files
            if s.kind is SelectorKind.GLOB
        ]
        #: No defaults and no globs: a source row's values are the file's values as they are.
        self.plain = not self.globs and not self.defaults

    # ----------------------------------------------------------------------------------------- ownership

    def owns_pattern(self, key: str) -> bool:
        """Whether ``key`` matches one of the ``owns`` patterns (memoised: keys repeat across files)."""
        if self._rx is None:
            return False
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._rx(key)
        return hit

    def owns(self, key: str, given: Collection[str]) -> bool:
        """Whether this manifest manages ``key`` on a file it gives ``given`` (keys, ``null`` included)."""
        return not self.merge or key in given or self.owns_pattern(key)

    def owned(self, given: Collection[str], keys: Iterable[str]) -> frozenset[str] | None:
        """The keys this manifest manages on one file, among ``given`` and ``keys`` (``None``: every key)."""
        if not self.merge:
            return None
        out = set(given)
        if self._rx is not None:
            out.update(k for k in keys if self.owns_pattern(k))
        return frozenset(out)

    # ----------------------------------------------------------------------------------------- layering

    def _layers(
        self,
        rel: str | None,
        row: Mapping[str, T] | None,
        exact: Mapping[str, T] | None,
        defaults: Mapping[str, T],
        glob_values: Callable[[tuple[re.Pattern[str], FileSelector, dict[str, JsonValue]]], Mapping[str, T]],
        on_glob: Callable[[int], None] | None,
    ) -> dict[str, T]:
        out = dict(defaults)
        if rel is not None:
            for n, g in enumerate(self.globs):
                if g[0].match(rel):
                    if on_glob is not None:
                        on_glob(n)
                    out.update(glob_values(g))
        if row is not None:
            out.update(row)
        if exact is not None:
            out.update(exact)
        return out

    def layer(
        self,
        rel: str | None,
        row: Mapping[str, JsonValue] | None = None,
        exact: FileSelector | None = None,
        on_glob: Callable[[int], None] | None = None,
    ) -> Mapping[str, JsonValue]:
        """The values this manifest gives the file ``rel``: defaults, matching globs in order, the source
        row, the exact entry (``rel=None``: no glob is matched). ``on_glob(n)`` hears of each glob used."""
        if row is not None and exact is None and self.plain:
            return row
        return self._layers(
            rel,
            row,
            plain_values(exact.metadata) if exact is not None else None,
            self.defaults,
            lambda g: g[2],
            on_glob,
        )

    def layer_located(
        self,
        rel: str | None,
        row: Mapping[str, Assignment] | None = None,
        exact: FileSelector | None = None,
    ) -> dict[str, Assignment]:
        """:meth:`layer` with each value's location."""
        return self._layers(
            rel,
            row,
            exact.metadata if exact is not None else None,
            self.m.defaults,
            lambda g: g[1].metadata,
            None,
        )

    # ----------------------------------------------------------------------------------------- the write

    def desired(
        self,
        given: Mapping[str, JsonValue],
        current: MetadataView,
        live: MetadataView | None = None,
    ) -> dict[str, JsonValue]:
        """The dict a file ends up with after this manifest's write onto ``current``.

        Owned keys are judged against ``live`` (the file as listed; ``current`` if not given), so a value
        another manifest or a rename put in ``current`` is not owned through a pattern.
        """
        return self.write(given, current, live)[0]

    def write(
        self,
        given: Mapping[str, JsonValue],
        current: MetadataView,
        live: MetadataView | None = None,
    ) -> tuple[dict[str, JsonValue], frozenset[str] | None]:
        """:meth:`desired`, and the keys owned (``None``: every key, overwrite)."""
        if not self.merge:
            return {k: v for k, v in given.items() if v is not None}, None
        owned = self.owned(given, live if live is not None else current)
        assert owned is not None
        out = dict(current)
        for key in owned:
            v = given.get(key)
            if v is None:
                out.pop(key, None)
            else:
                out[key] = v
        return out, owned

    def is_unchanged(self, given: Mapping[str, JsonValue], live: MetadataView) -> bool:
        """Whether this manifest's write leaves ``live`` as it is (no desired dict is built).

        The fast form of ``values_equal(desired(given, live), live)``, pinned to it by a randomized test.
        """
        get = live.get
        if not self.merge:
            kept = 0
            for key, v in given.items():
                if v is None:
                    continue
                cur = get(key, _ABSENT)
                if cur is _ABSENT or not values_equal(cur, v):
                    return False
                kept += 1
            return kept == len(live)
        for key, v in given.items():
            cur = get(key, _ABSENT)
            tv = type(v)
            if tv is type(cur):  # the common case, inlined: the same scalar type
                if tv is str or tv is int or tv is bool:
                    if cur == v:
                        continue
                    return False
                if tv is float and cur == v:
                    continue
            if v is None:
                if cur is not _ABSENT:
                    return False
            elif cur is _ABSENT or not values_equal(cur, v):
                return False
        if self._rx is not None:
            for key in live:
                if key not in given and self.owns_pattern(key):
                    return False  # an owned key with no desired value is removed
        return True


def conflict(
    a: CompiledManifest,
    given_a: Collection[str],
    b: CompiledManifest,
    given_b: Collection[str],
    live_keys: Iterable[str],
    *,
    pattern_overlap: bool = False,
) -> list[str] | None:
    """What two manifests on one file both manage: ``None`` when either is an overwrite manifest (a conflict
    in itself), else the keys both own, sorted (empty: no conflict).

    ``owns`` patterns are matched against ``live_keys`` and the keys either manifest gives. With
    ``pattern_overlap`` (the offline check, which sees no live keys) two patterns that can match one key
    count too: the longer pattern is named.
    """
    if not a.merge or not b.merge:
        return None
    keys = set(given_a) | set(given_b)
    keys.update(live_keys)
    oa = a.owned(given_a, keys)
    ob = b.owned(given_b, keys)
    assert oa is not None and ob is not None
    shared = set(oa & ob)
    if pattern_overlap:
        for pa in a.patterns:
            for pb in b.patterns:
                if _patterns_overlap(pa, pb):
                    shared.add(pa if len(pa) >= len(pb) else pb)
    return sorted(shared)


_COMPILED: dict[int, tuple[FileManifest, CompiledManifest]] = {}


def compiled(m: FileManifest) -> CompiledManifest:
    """The :class:`CompiledManifest` of ``m``, compiled once (for callers that hold only the manifest)."""
    hit = _COMPILED.get(id(m))
    if hit is not None and hit[0] is m:
        return hit[1]
    if len(_COMPILED) >= 1024:
        _COMPILED.clear()
    c = CompiledManifest(m)
    _COMPILED[id(m)] = (m, c)
    return c
