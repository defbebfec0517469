"""Reserved metadata keys (SPEC §7c): the keys Encord gives a meaning of its own, never declared in the schema.

- ``config``: a video's sampling config, ``{sampling_rate: number >= 0, keyframe_mode: frame | seconds}``,
  both optional (Encord's defaults: one frame per second, ``frame``).
- ``keyframes``: a list of frame numbers (non-negative integers) with ``keyframe_mode: frame``, or of times
  (non-negative numbers) with ``keyframe_mode: seconds``; kept in the order written, as Encord keeps them.
- ``$encord``: Encord's own container (a mapping), e.g. for per-frame metadata; kept as it is.
- ``frames``: not a metadata key but the field beside ``metadata`` (a files entry, a source row) that gives
  per-frame values, ``{<frame>: {key: value}}``: frame numbers are non-negative integers, each frame a mapping
  of ordinary (schema) keys. In plans each value is the key ``frames[<frame>].<key>`` (:mod:`reconciler.frames`),
  so a metadata key spelled that way is refused: it is written under ``frames:``.

This module is the one place that knows these keys: what shape each has, and which ``keyframe_mode`` a
``keyframes`` value is read with. A reserved key is never "undeclared" and never checked against the schema.
The keyframe mode is the one given by the ``config`` of the same scope (a files entry or a source row), else
by the manifest's ``defaults``, else ``frame``. Every check returns :class:`ReservedProblem`s whose ``path``
says where inside the value the problem is, so that a manifest can point at it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from reconciler.frames import WIRE_FRAMES, frame_number, to_keys
from reconciler.model import KeyframeMode
from reconciler.types import JsonValue
from reconciler.values import describe_value

__all__ = [
    "CONFIG",
    "CONFIG_FIELDS",
    "DEFAULT_KEYFRAME_MODE",
    "ENCORD",
    "FRAMES",
    "KEYFRAMES",
    "KEYFRAME_MODES",
    "RESERVED_KEYS",
    "KeyframeMode",
    "ReservedProblem",
    "check_config",
    "check_frames",
    "check_keyframes",
    "check_reserved",
    "first_problem",
    "frame_key_problem",
    "is_reserved",
    "keyframe_mode",
]

CONFIG: Final = "config"
KEYFRAMES: Final = "keyframes"
ENCORD: Final = "$encord"
#: Every reserved key (a new one is added here and in :func:`check_reserved`).
RESERVED_KEYS: Final = frozenset({CONFIG, KEYFRAMES, ENCORD})
#: The field beside ``metadata`` that gives per-frame values (not a metadata key: see :func:`check_frames`).
FRAMES: Final = "frames"

KEYFRAME_MODES: Final[tuple[KeyframeMode, ...]] = ("frame", "seconds")
DEFAULT_KEYFRAME_MODE: Final[KeyframeMode] = "frame"
#: The fields of ``config``, in the order messages list them.
CONFIG_FIELDS: Final = ("keyframe_mode", "sampling_rate")


@dataclass(frozen=True)
class ReservedProblem:
    """What is wrong with a reserved key's value. ``path`` leads from the value to the bad part (``()``: the
    value itself); ``at_key`` means the problem is the mapping key at ``path`` (an unknown field)."""

    key: str
    message: str
    path: tuple[str | int, ...] = ()
    at_key: bool = False


def is_reserved(key: str) -> bool:
    """Whether ``key`` is one of the reserved keys."""
    return key in RESERVED_KEYS


def _is_number(v: object) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, float) and v - v == 0  # false for inf and nan


def check_config(value: JsonValue) -> ReservedProblem | None:
    """The ``config`` key: a mapping with optional ``sampling_rate`` (a number >= 0) and ``keyframe_mode``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return ReservedProblem(
            CONFIG,
            f"config: expected a mapping (sampling_rate, keyframe_mode), got {describe_value(value)}",
        )
    for name in value:
        if name not in CONFIG_FIELDS:
            close = difflib.get_close_matches(name, CONFIG_FIELDS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return ReservedProblem(
                CONFIG,
                f"config: unknown field {name!r} (allowed fields: {', '.join(CONFIG_FIELDS)}){hint}",
                (name,),
                at_key=True,
            )
    if "sampling_rate" in value:
        rate = value["sampling_rate"]
        if not _is_number(rate):
            return ReservedProblem(
                CONFIG,
                f"config.sampling_rate: expected a number (frames per second), got {describe_value(rate)}",
                ("sampling_rate",),
            )
        assert isinstance(rate, int | float)
        if rate < 0:
            return ReservedProblem(
                CONFIG, f"config.sampling_rate must be at least 0, got {rate}", ("sampling_rate",)
            )
    if "keyframe_mode" in value:
        mode = value["keyframe_mode"]
        if mode not in KEYFRAME_MODES:
            shown = repr(mode) if isinstance(mode, str) else describe_value(mode)
            close = (
                difflib.get_close_matches(mode, KEYFRAME_MODES, n=1, cutoff=0.6)
                if isinstance(mode, str)
                else []
            )
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return ReservedProblem(
                CONFIG,
                f"config.keyframe_mode: invalid value {shown} (expected one of frame, seconds){hint}",
                ("keyframe_mode",),
            )
    return None


def keyframe_mode(config: JsonValue, fallback: KeyframeMode = DEFAULT_KEYFRAME_MODE) -> KeyframeMode:
    """The ``keyframe_mode`` a ``config`` value gives (``fallback`` when it gives none, or no valid one)."""
    if isinstance(config, dict):
        mode = config.get("keyframe_mode")
        for known in KEYFRAME_MODES:
            if mode == known:
                return known
    return fallback


def check_keyframes(value: JsonValue, mode: KeyframeMode = DEFAULT_KEYFRAME_MODE) -> ReservedProblem | None:
    """The ``keyframes`` key under ``mode``: frame numbers (``frame``) or times in seconds (``seconds``)."""
    if value is None:
        return None
    what = "frame numbers" if mode == "frame" else "times in seconds"
    if not isinstance(value, list):
        return ReservedProblem(
            KEYFRAMES, f"keyframes: expected a list of {what}, got {describe_value(value)}"
        )
    for i, x in enumerate(value):
        if mode == "frame":
            if type(x) is not int or x < 0:
                return ReservedProblem(
                    KEYFRAMES,
                    f"keyframes: item {i} must be a non-negative integer frame number "
                    f"(keyframe_mode: frame), got {describe_value(x)}",
                )
        elif not _is_number(x) or x < 0:  # type: ignore[operator]  # a number, checked first
            return ReservedProblem(
                KEYFRAMES,
                f"keyframes: item {i} must be a non-negative number of seconds "
                f"(keyframe_mode: seconds), got {describe_value(x)}",
            )
    return None


def check_reserved(
    values: Mapping[str, JsonValue], inherited_mode: KeyframeMode = DEFAULT_KEYFRAME_MODE
) -> Iterator[ReservedProblem]:
    """Every problem of the reserved keys of one scope (a files entry, ``defaults`` or a source row).

    ``inherited_mode`` is the keyframe mode the scope's ``config`` falls back to (the manifest's defaults).
    Keys that are not reserved are ignored; ``null`` is never a problem (it removes the key).
    """
    config = values.get(CONFIG)
    config_problem = check_config(config) if CONFIG in values else None
    if config_problem is not None:
        yield config_problem
    if KEYFRAMES in values:
        problem = check_keyframes(values[KEYFRAMES], keyframe_mode(config, inherited_mode))
        if problem is not None:
            yield problem
    if ENCORD in values:
        raw = values[ENCORD]
        if raw is not None and not isinstance(raw, dict):
            yield ReservedProblem(ENCORD, f"$encord: expected a mapping, got {describe_value(raw)}")
        elif raw is not None and to_keys({ENCORD: raw}) != {ENCORD: raw}:
            # Per-frame values in the wire form read back as frames[N].KEY keys, never as this $encord value:
            # written as it is, the file would never plan as unchanged.
            yield ReservedProblem(
                ENCORD,
                f"$encord.{WIRE_FRAMES}: per-frame values are written under frames: (frames: {{13: {{clip: ...}}}})",
                (WIRE_FRAMES,),
                at_key=True,
            )


def first_problem(
    values: Mapping[str, JsonValue], inherited_mode: KeyframeMode = DEFAULT_KEYFRAME_MODE
) -> str | None:
    """The message of the first problem :func:`check_reserved` finds, or ``None`` (for source rows)."""
    for problem in check_reserved(values, inherited_mode):
        return problem.message
    return None


def frame_key_problem(key: str) -> str | None:
    """Why a metadata key may not be written as it is: ``frames[13].clip`` is how plans spell a per-frame
    value, which a manifest or source row gives under ``frames:``."""
    if not key.startswith("frames["):
        return None
    return f"key {key!r}: per-frame values are written under frames: (frames: {{13: {{clip: ...}}}})"


def check_frames(value: JsonValue) -> Iterator[ReservedProblem]:
    """The ``frames`` field: ``{<frame>: {key: value}}`` with non-negative integer frame numbers (written as
    YAML/JSON keys: ``13`` or ``"13"``) and, in each frame, ordinary metadata keys (no reserved key, no
    per-frame spelling). ``null`` is no frames. The values themselves are checked against the schema by the
    caller, each by its key (:func:`reconciler.frames.base_key`)."""
    if value is None:
        return
    if not isinstance(value, dict):
        yield ReservedProblem(
            FRAMES, f"frames: expected a mapping of frame numbers to metadata, got {describe_value(value)}"
        )
        return
    for name, values in value.items():
        if frame_number(name) is None:
            yield ReservedProblem(
                FRAMES,
                f"frames: {name!r} is not a frame number (a non-negative integer such as 0 or 13)",
                (name,),
                at_key=True,
            )
            continue
        if not isinstance(values, dict):
            yield ReservedProblem(
                FRAMES,
                f"frames.{name}: expected a mapping of metadata keys to values, got {describe_value(values)}",
                (name,),
            )
            continue
        for key in values:
            if is_reserved(key):
                yield ReservedProblem(
                    FRAMES,
                    f"frames.{name}: {key!r} is a reserved key of the whole file, not a per-frame key",
                    (name, key),
                    at_key=True,
                )
            elif key.startswith("frames["):
                yield ReservedProblem(
                    FRAMES, f"frames.{name}: key {key!r} cannot be per-frame", (name, key), at_key=True
                )
