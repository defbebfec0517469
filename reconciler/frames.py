"""Per-frame custom metadata (SPEC §7c): the one mapping between plan keys and Encord's wire form.

Inside the engine, and in every plan, a per-frame value is an ordinary metadata key spelled
``frames[<frame>].<key>`` (``frames[13].clip``), so ownership, merge, overwrite, limits and the
journal treat it like any other key. On the wire the same value lives at
``clientMetadata["$encord"]["frame_metadata"]["<frame>"][<key>]``. Encord documents per-frame
metadata, but the exact wire spelling is unconfirmed, so it is decided here and nowhere else:
changing :data:`WIRE_ROOT` / :data:`WIRE_FRAMES` is the whole change.

================================  ==========================================================
wire (clientMetadata)             keys (engine, plans)
================================  ==========================================================
``{"$encord": {"frame_metadata":  ``{"frames[13].clip": [...]}``
{"13": {"clip": [...]}}}}``
``{"$encord": {"other": 1,        ``{"$encord": {"other": 1}, "frames[0].k": "v"}``
"frame_metadata": {"0": ...}}}``  (the rest of ``$encord`` is kept as it is, untouched)
================================  ==========================================================

A wire dict whose ``$encord`` part cannot be mapped losslessly (frame names that are not canonical
non-negative integers, a frame value that is not a non-empty mapping) is left exactly as it is: nothing is
ever dropped in either direction, and :func:`to_wire` of :func:`to_keys` gives back the input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from reconciler.jsonio import loads
from reconciler.types import JsonValue, MetadataDict

__all__ = [
    "WIRE_FRAMES",
    "WIRE_ROOT",
    "base_key",
    "frame_key",
    "frame_number",
    "frames_to_keys",
    "has_frame_keys",
    "may_hold_frames",
    "parse_frame_key",
    "plan_order",
    "raw_to_keys",
    "split_frame_keys",
    "to_keys",
    "to_wire",
]

#: The reserved top-level key Encord keeps its own per-file data under.
WIRE_ROOT = "$encord"
#: Where, inside :data:`WIRE_ROOT`, the per-frame metadata lives (frame number as a string -> dict).
WIRE_FRAMES = "frame_metadata"

_PREFIX = "frames["
_FRAME_KEY = re.compile(r"frames\[(0|[1-9][0-9]*)\]\.(.+)", re.DOTALL)
_CANONICAL_FRAME = re.compile(r"0|[1-9][0-9]*")


def frame_key(frame: int, key: str) -> str:
    """The plan key of ``key`` on ``frame``: ``frames[13].clip``."""
    return f"{_PREFIX}{frame}].{key}"


def parse_frame_key(name: str) -> tuple[int, str] | None:
    """``frames[13].clip`` -> ``(13, "clip")``; ``None`` for any other key."""
    if not name.startswith(_PREFIX):
        return None
    m = _FRAME_KEY.fullmatch(name)
    return (int(m.group(1)), m.group(2)) if m else None


def base_key(name: str) -> str:
    """The key a plan key stands for in the schema: ``frames[13].clip`` -> ``clip``; any other key as it is.

    A per-frame value is checked against (and judged undeclared by) the schema entry of its ``KEY`` part.
    """
    if not name.startswith(_PREFIX):
        return name
    parsed = parse_frame_key(name)
    return parsed[1] if parsed else name


def frame_number(name: str) -> int | None:
    """A frame number as written in a manifest or source (``"13"``), or ``None`` when it is not a canonical
    non-negative integer (``"-1"``, ``"1.5"``, ``"abc"``, ``"013"``)."""
    return int(name) if _CANONICAL_FRAME.fullmatch(name) else None


def may_hold_frames(text: str) -> bool:
    """Whether a clientMetadata JSON text may hold per-frame metadata (then it is decoded and mapped with
    :func:`to_keys`); ``False`` means its keys are exactly its wire keys. Escaped text (``\\u0024``) counts as
    possibly holding it, so no spelling of the wire root slips past."""
    return WIRE_ROOT in text or "\\u" in text


def raw_to_keys(text: str) -> str | MetadataDict:
    """A raw listing's clientMetadata JSON text as engine keys: the text itself when its keys are its wire
    keys (the common case, left for the planner to parse on use), else the decoded dict through
    :func:`to_keys`. Text that does not decode to an object is returned as it is (the planner reports it)."""
    if not may_hold_frames(text):
        return text
    try:
        value = loads(text)
    except ValueError:
        return text
    if not isinstance(value, dict) or WIRE_ROOT not in value:
        return text
    return to_keys(value)


def split_frame_keys(keys: Mapping[str, JsonValue]) -> tuple[MetadataDict, dict[int, MetadataDict]]:
    """Engine keys as ``(plain keys, {frame: {key: value}})``, frames in numeric order (for ``import``)."""
    plain: MetadataDict = {}
    frames: dict[int, MetadataDict] = {}
    for name, value in keys.items():
        parsed = parse_frame_key(name) if name.startswith(_PREFIX) else None
        if parsed is None:
            plain[name] = value
        else:
            frames.setdefault(parsed[0], {})[parsed[1]] = value
    return plain, {n: frames[n] for n in sorted(frames)}


def plan_order(name: str) -> tuple[str] | tuple[str, int, str]:
    """The sort key of a plan key: per-frame keys by frame number, then key (``frames[7].clip`` before
    ``frames[13].clip``); every other key by its name, exactly as plain string order."""
    if name.startswith(_PREFIX):
        parsed = parse_frame_key(name)
        if parsed is not None:
            return (_PREFIX, parsed[0], parsed[1])
    return (name,)


def has_frame_keys(keys: Mapping[str, object]) -> bool:
    """Whether any key of ``keys`` is a per-frame key (a cheap test for the common case: none)."""
    return any(k.startswith(_PREFIX) for k in keys)


def frames_to_keys(frames: Mapping[int, Mapping[str, JsonValue]]) -> MetadataDict:
    """A manifest's ``frames: {13: {clip: ...}}`` as plan keys, frames in numeric order."""
    out: MetadataDict = {}
    for frame in sorted(frames):
        for key, value in frames[frame].items():
            out[frame_key(frame, key)] = value
    return out


def _mappable(frames: object) -> bool:
    if not isinstance(frames, dict):
        return False
    return all(
        isinstance(name, str) and _CANONICAL_FRAME.fullmatch(name) and isinstance(values, dict) and values
        for name, values in frames.items()
    )


def to_keys(wire: Mapping[str, JsonValue]) -> MetadataDict:
    """A live clientMetadata dict as engine keys: per-frame values become ``frames[N].KEY`` keys.

    A dict without a mappable ``$encord.frame_metadata`` part is returned as a plain copy.
    """
    root = wire.get(WIRE_ROOT)
    if not isinstance(root, dict) or WIRE_FRAMES not in root or not _mappable(root[WIRE_FRAMES]):
        return dict(wire)
    out: MetadataDict = {}
    for key, value in wire.items():
        if key != WIRE_ROOT:
            out[key] = value
    rest = {k: v for k, v in root.items() if k != WIRE_FRAMES}
    if rest:
        out[WIRE_ROOT] = rest
    frames = root[WIRE_FRAMES]
    assert isinstance(frames, dict)
    for name in sorted(frames, key=int):
        values = frames[name]
        assert isinstance(values, dict)
        for key, value in values.items():
            out[frame_key(int(name), key)] = value
    if not frames:  # an empty frame map is kept, so the round trip gives back the input
        out[WIRE_ROOT] = {**rest, WIRE_FRAMES: {}}
    return out


def to_wire(keys: Mapping[str, JsonValue]) -> MetadataDict:
    """Engine keys as a clientMetadata dict to write: the inverse of :func:`to_keys`.

    ``frames[N].KEY`` keys are gathered under ``$encord.frame_metadata["N"]`` (frames in numeric order),
    beside whatever else ``$encord`` holds. A dict without per-frame keys is returned as a plain copy.
    Raises ValueError when per-frame keys meet a ``$encord`` value that is not a mapping.
    """
    if not has_frame_keys(keys):
        return dict(keys)
    out: MetadataDict = {}
    frames: dict[int, dict[str, JsonValue]] = {}
    for name, value in keys.items():
        parsed = parse_frame_key(name)
        if parsed is None:
            out[name] = value
        else:
            frames.setdefault(parsed[0], {})[parsed[1]] = value
    if not frames:
        return out
    root = out.get(WIRE_ROOT, {})
    if not isinstance(root, dict):
        raise ValueError(
            f"cannot write per-frame metadata: {WIRE_ROOT!r} holds {type(root).__name__}, not a mapping"
        )
    merged: dict[str, JsonValue] = dict(root)
    existing = merged.get(WIRE_FRAMES)
    wire_frames: dict[str, JsonValue] = dict(existing) if isinstance(existing, dict) else {}
    for frame in sorted(frames):
        wire_frames[str(frame)] = frames[frame]
    merged[WIRE_FRAMES] = wire_frames
    out[WIRE_ROOT] = merged
    return out
