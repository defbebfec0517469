"""The rules of one manifest document that pydantic cannot say in our words, each at its line and column.

They walk the document's plain YAML (so that one malformed field does not hide its neighbours' problems) and
report into a :class:`~reconciler.manifest.diagnostics.Collected`. What the checks across documents need
from a document comes back as facts: the values it assigns (to check against the schema), its exact
selectors (for the ownership-conflict check), its ``source:`` file and the schema keys that are well formed.
The records themselves are built from the validated models (:mod:`reconciler.manifest.convert`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Final

from pydantic import ValidationError

from reconciler.errors import SourceLocation
from reconciler.frames import frame_key
from reconciler.manifest.convert import canonical_uuid, field_spec
from reconciler.manifest.crosschecks import Assigned
from reconciler.manifest.diagnostics import Collected, Doc, quote_list, suggest, where
from reconciler.manifest.schema import API_VERSION, KEY_ENTRY, KIND_MODELS, TYPE_NAMES
from reconciler.model import KeyframeMode, Mode, SelectorKind, SourceSpec
from reconciler.providers import registry
from reconciler.reserved import (
    CONFIG,
    DEFAULT_KEYFRAME_MODE,
    check_frames,
    check_reserved,
    frame_key_problem,
    is_reserved,
    keyframe_mode,
)
from reconciler.schema import (
    EMBEDDING_ACTIVE_LIMIT,
    EMBEDDING_MAX,
    ENUM_MAX_VALUES,
    TYPE_ALIASES,
    FieldSpec,
    KeyType,
    check_key_name,
)
from reconciler.values import describe_value

if TYPE_CHECKING:
    from reconciler.manifest.yamlio import YamlPath
    from reconciler.types import JsonValue

__all__ = [
    "SOURCE_FORMATS",
    "FileFacts",
    "SchemaFacts",
    "check_file_manifest",
    "check_header",
    "check_schema",
    "check_workspace",
    "resolve_source",
]

#: Source file suffix -> format.
#: ``.json`` is Encord's registration (cloud-integration upload) JSON, read by manifest/source.py.
SOURCE_FORMATS: Final = {".jsonl": "jsonl", ".csv": "csv", ".json": "registration"}
_SELECTORS = tuple(k.value for k in SelectorKind)


def _mapping(value: JsonValue) -> dict[str, JsonValue]:
    return value if isinstance(value, dict) else {}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------- header


def check_header(doc: Doc, out: Collected) -> str | None:
    """``apiVersion`` and ``kind``: the document's kind, or ``None`` when it has no usable one."""
    data = doc.yaml.data
    if data is None:
        return None  # an empty document (e.g. a trailing ---)
    if not isinstance(data, dict):
        out.error(
            doc.at(()),
            f"a manifest document must be a mapping (apiVersion, kind, ...), got {describe_value(data)}",
        )
        return None
    if "apiVersion" not in data:
        out.error(doc.location, f"missing apiVersion (expected apiVersion: {API_VERSION})")
    elif data["apiVersion"] != API_VERSION:
        got = data["apiVersion"]
        shown = repr(got) if isinstance(got, str) else describe_value(got)
        out.error(doc.at(("apiVersion",)), f"unsupported apiVersion {shown} (expected {API_VERSION!r})")
    kinds = sorted(KIND_MODELS)
    kind = data.get("kind")
    if "kind" not in data:
        out.error(doc.location, f"missing kind (one of {quote_list(kinds)})")
        return None
    if not isinstance(kind, str) or kind not in KIND_MODELS:
        shown = repr(kind) if isinstance(kind, str) else describe_value(kind)
        hint = suggest(kind, kinds) if isinstance(kind, str) else None
        extra = f"; did you mean {hint!r}?" if hint else ""
        out.error(doc.at(("kind",)), f"unknown kind {shown} (expected one of {quote_list(kinds)}){extra}")
        return None
    return kind


# --------------------------------------------------------------------------------------------- Workspace


def check_workspace(doc: Doc, out: Collected) -> None:
    data = doc.data
    provider = _mapping(data.get("provider"))
    raw_type = provider.get("type", registry.DEFAULT_TYPE)
    ptype = raw_type if isinstance(raw_type, str) else registry.DEFAULT_TYPE
    own = registry.kind(ptype).workspace_keys if ptype in registry.PROVIDERS else None
    for name in provider:
        owner = None if own is None or name in own else registry.workspace_key_owner(name)
        if owner is not None and ptype != owner:
            out.error(
                doc.key_at(("provider", name)),
                f"{name!r} applies only to provider type {owner} (this provider is {ptype})",
            )
    for name in ("path", "seed"):
        given = provider.get(name)
        if isinstance(given, str) and not given.strip():
            out.error(doc.at(("provider", name)), f"provider {name} must not be empty")


# --------------------------------------------------------------------------------------------- MetadataSchema


@dataclass
class SchemaFacts:
    """The schema keys that are well formed (values are checked against them), and those that are not (their
    values are not checked: no cascade of errors)."""

    specs: dict[str, FieldSpec] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)


def check_schema(doc: Doc, out: Collected) -> SchemaFacts:
    facts = SchemaFacts()
    renamed: dict[str, SourceLocation] = {}
    for key, entry in _mapping(doc.data.get("keys")).items():
        path: YamlPath = ("keys", key)
        problem = check_key_name(key)
        if problem is not None:
            out.error(doc.key_at(path), problem)
        spec = None
        if _check_key(doc, out, key, entry, path, renamed):
            with contextlib.suppress(ValidationError):  # reported with the whole document
                spec = field_spec(KEY_ENTRY.validate_python(entry))
        if spec is None:
            facts.broken.add(key)
        else:
            facts.specs[key] = spec
    return facts


def _check_key(
    doc: Doc,
    out: Collected,
    key: str,
    entry: JsonValue,
    path: YamlPath,
    renamed: dict[str, SourceLocation],
) -> bool:
    """Report every problem of one schema entry; whether it is well formed."""
    if isinstance(entry, str):
        body: dict[str, JsonValue] = {"type": entry}
        type_path = path
    elif isinstance(entry, dict):
        body = entry
        type_path = (*path, "type")
    else:
        return False  # reported by pydantic
    type_name = body.get("type")
    if not isinstance(type_name, str) or type_name not in TYPE_NAMES:
        return False  # reported by pydantic
    if type_name in TYPE_ALIASES:
        modern = TYPE_ALIASES[type_name].value
        out.warn(doc.at(type_path), f"type {type_name!r} is deprecated; write {modern!r} (same meaning)")
        ktype = TYPE_ALIASES[type_name]
    else:
        ktype = KeyType(type_name)
    ok = True
    raw_values = body.get("values")
    raw_size = body.get("size")
    if ktype is not KeyType.ENUM and "values" in body:
        out.error(doc.key_at((*path, "values")), "'values' applies only to enum keys")
        ok = False
    if ktype is not KeyType.EMBEDDING and "size" in body:
        out.error(doc.key_at((*path, "size")), "'size' applies only to embedding keys")
        ok = False
    if ktype is KeyType.ENUM:
        if raw_values is None:
            out.error(
                doc.at(path), f"enum key {key!r} needs values (a list of 1 to {ENUM_MAX_VALUES} strings)"
            )
            ok = False
        elif isinstance(raw_values, list):
            ok = _check_enum_values(doc, out, key, raw_values, (*path, "values")) and ok
        else:
            ok = False
    if ktype is KeyType.EMBEDDING:
        if raw_size is None:
            out.error(doc.at(path), f"embedding key {key!r} needs a size (1 to {EMBEDDING_MAX})")
            ok = False
        elif _is_int(raw_size):
            assert isinstance(raw_size, int)
            if not 1 <= raw_size <= EMBEDDING_MAX:
                out.error(
                    doc.at((*path, "size")), f"embedding size must be 1 to {EMBEDDING_MAX}, got {raw_size}"
                )
                ok = False
            elif raw_size > EMBEDDING_ACTIVE_LIMIT:
                out.warn(
                    doc.at((*path, "size")),
                    f"embedding size {raw_size} is above {EMBEDDING_ACTIVE_LIMIT}: "
                    f"Active accepts at most {EMBEDDING_ACTIVE_LIMIT}",
                )
        else:
            ok = False
    renamed_from = body.get("renamed_from")
    if isinstance(renamed_from, str):
        rpath = (*path, "renamed_from")
        problem = check_key_name(renamed_from)
        if renamed_from == key:
            out.error(doc.at(rpath), f"renamed_from must name a different key than {key!r}")
        elif problem is not None:
            out.error(doc.at(rpath), f"renamed_from: {problem}")
        elif renamed_from in renamed:
            out.error(
                doc.at(rpath),
                f"key {renamed_from!r} is already renamed at {renamed[renamed_from]}; "
                "a key can be renamed only once",
            )
        else:
            renamed[renamed_from] = doc.at(rpath)
    return ok


def _check_enum_values(doc: Doc, out: Collected, key: str, raw: list[JsonValue], path: YamlPath) -> bool:
    ok = True
    if not raw:
        out.error(doc.at(path), f"enum key {key!r} needs at least one value")
        ok = False
    if len(raw) > ENUM_MAX_VALUES:
        out.error(doc.at(path), f"an enum has at most {ENUM_MAX_VALUES} values, {key!r} has {len(raw)}")
        ok = False
    seen: dict[str, int] = {}
    for i, value in enumerate(raw):
        if not isinstance(value, str):
            ok = False  # reported by pydantic
            continue
        if value in seen:
            here, first = doc.at((*path, i)), doc.at((*path, seen[value]))
            out.error(here, f"duplicate enum value {value!r} (first at {where(first, here)})")
            ok = False
            continue
        seen[value] = i
    return ok


# --------------------------------------------------------------------------------------------- FileMetadata


@dataclass
class FileFacts:
    """What the checks across documents need from one FileMetadata document."""

    #: Every non-reserved value it assigns, for the check against the schema.
    assignments: list[Assigned] = field(default_factory=list)
    #: Its ``source:`` file, resolved inside the manifest directory (``None``: none, or a broken one).
    source: SourceSpec | None = None


def _check_dataset_anchor(doc: Doc, out: Collected) -> None:
    """A FileMetadata document names exactly one of ``folder`` and ``dataset`` (a dataset hash, SPEC §7b), and a
    dataset manifest has no ``recursive`` or ``children``."""
    data = doc.data
    raw = data.get("dataset")
    if data.get("folder") is not None and raw is not None:
        out.error(
            doc.key_at(("dataset",)), "a FileMetadata manifest names one of folder or dataset, not both"
        )
    elif data.get("folder") is None and raw is None:
        out.error(
            doc.location,
            "a FileMetadata manifest needs folder (a folder path or UUID) or dataset (a dataset hash)",
        )
    if raw is None:
        return
    if isinstance(raw, str) and not raw.strip():
        out.error(doc.at(("dataset",)), "dataset must not be empty (use a dataset hash)")
    for key in ("recursive", "children"):
        if key in data:
            out.error(
                doc.key_at((key,)),
                f"{key} applies only to folder manifests (a dataset's data units are not in folders); remove it",
            )


def check_file_manifest(doc: Doc, out: Collected, root: Path) -> FileFacts:
    facts = FileFacts()
    data = doc.data
    raw_folder = data.get("folder")
    folder = raw_folder if isinstance(raw_folder, str) else ""
    if isinstance(raw_folder, str) and not folder.strip():
        out.error(doc.at(("folder",)), "folder must not be empty (use a folder path or a folder UUID)")
    _check_dataset_anchor(doc, out)
    overwrite = data.get("mode") == Mode.OVERWRITE.value
    owns_raw = data.get("owns")
    if isinstance(owns_raw, list):
        for i, pattern in enumerate(owns_raw):
            if isinstance(pattern, str) and not pattern.strip():
                out.error(doc.at(("owns", i)), "an owns pattern must not be empty")
    if "owns" in data and overwrite:
        out.error(
            doc.key_at(("owns",)),
            "owns applies only to mode: merge (an overwrite manifest owns every key of the files it selects)",
        )
    _check_metadata(doc, out, facts, data.get("defaults"), ("defaults",))
    # Entries and source rows read their keyframes in the mode the defaults' config gives (reserved.py).
    kf_mode = keyframe_mode(_mapping(data.get("defaults")).get(CONFIG))
    exact_seen: dict[tuple[SelectorKind, str], SourceLocation] = {}
    files_raw = data.get("files")
    for i, entry in enumerate(files_raw if isinstance(files_raw, list) else []):
        if not isinstance(entry, dict):
            continue  # reported by pydantic
        selected = _check_selector(doc, out, entry, ("files", i))
        if selected is None:
            continue
        _check_metadata(doc, out, facts, entry.get("metadata"), ("files", i, "metadata"), kf_mode)
        _check_frames(doc, out, facts, entry.get("frames"), ("files", i, "frames"))
        kind, pattern, location = selected
        if kind is SelectorKind.GLOB:
            continue
        if (kind, pattern) in exact_seen:
            first = exact_seen[(kind, pattern)]
            out.error(
                location,
                f"duplicate selector {kind.value} {pattern!r} (first at {where(first, location)}); "
                "give each file one entry",
            )
            continue
        exact_seen[(kind, pattern)] = location
    facts.source = _check_source(doc, out, root, data.get("source"), kf_mode)
    return facts


def _check_selector(
    doc: Doc, out: Collected, entry: dict[str, JsonValue], path: YamlPath
) -> tuple[SelectorKind, str, SourceLocation] | None:
    """A files entry's one selector: its kind, its pattern (a UUID in canonical form) and where it is."""
    given = [s for s in _SELECTORS if entry.get(s) is not None]
    if not given:
        out.error(doc.at(path), "a files entry needs one of glob, name or uuid")
        return None
    if len(given) > 1:
        out.error(
            doc.key_at((*path, given[1])),
            f"a files entry takes only one of glob, name or uuid (found {' and '.join(given)})",
        )
        return None
    kind = SelectorKind(given[0])
    raw = entry[given[0]]
    vpath = (*path, given[0])
    if not isinstance(raw, str):
        return None  # reported by pydantic
    pattern = raw
    if not pattern.strip():
        out.error(doc.at(vpath), f"{kind.value} must not be empty")
        return None
    if kind is SelectorKind.UUID:
        canonical = canonical_uuid(pattern)
        if canonical is None:
            out.error(doc.at(vpath), f"uuid {pattern!r} is not a UUID")
            return None
        pattern = canonical
    return kind, pattern, doc.at(vpath)


def _check_metadata(
    doc: Doc,
    out: Collected,
    facts: FileFacts,
    raw: JsonValue,
    path: YamlPath,
    inherited_mode: KeyframeMode = DEFAULT_KEYFRAME_MODE,
) -> tuple[str, ...]:
    """One ``metadata``/``defaults`` mapping: key names, the reserved keys together; the keys it gives."""
    if not isinstance(raw, dict):
        return ()
    for key, value in raw.items():
        if is_reserved(key):
            continue  # checked below, with the other reserved keys of this scope
        frame_problem = frame_key_problem(key)
        if frame_problem is not None:
            out.error(doc.key_at((*path, key)), frame_problem)
            continue
        problem = check_key_name(key)
        if problem is not None:
            out.warn(doc.key_at((*path, key)), f"{problem} (Encord's rule for metadata keys)")
        facts.assignments.append(Assigned(key, value, doc.at((*path, key))))
    for reserved in check_reserved(raw, inherited_mode):
        at = (*path, reserved.key, *reserved.path)
        out.error(doc.key_at(at) if reserved.at_key else doc.at(at), reserved.message)
    return tuple(raw)


def _check_frames(
    doc: Doc, out: Collected, facts: FileFacts, raw: JsonValue, path: YamlPath
) -> tuple[str, ...]:
    """A files entry's ``frames:`` (reconciler.reserved.check_frames): its values, each as the plan key
    ``frames[N].KEY``, join the values checked against the schema; the plan keys it gives."""
    if not isinstance(raw, dict):
        return ()  # absent, or reported by pydantic
    problems = list(check_frames(raw))
    for problem in problems:
        at = (*path, *problem.path)
        out.error(doc.key_at(at) if problem.at_key else doc.at(at), problem.message)
    if problems:
        return ()
    given: list[str] = []
    for name, values in raw.items():
        assert isinstance(values, dict)
        for key, value in values.items():
            name_problem = check_key_name(key)
            if name_problem is not None:
                out.warn(doc.key_at((*path, name, key)), f"{name_problem} (Encord's rule for metadata keys)")
            plan_key = frame_key(int(name), key)
            facts.assignments.append(Assigned(plan_key, value, doc.at((*path, name, key))))
            given.append(plan_key)
    return tuple(given)


def _check_source(
    doc: Doc, out: Collected, root: Path, raw: JsonValue, mode: KeyframeMode
) -> SourceSpec | None:
    if not isinstance(raw, str):
        return None  # absent, or reported by pydantic
    location = doc.at(("source",))
    resolved = resolve_source(raw, root)
    if isinstance(resolved, str):
        out.error(location, resolved)
        return None
    rel = resolved[0]
    return SourceSpec(
        path=rel,
        format=SOURCE_FORMATS[PurePosixPath(rel).suffix.lower()],
        location=location,
        keyframe_mode=mode,
    )


def resolve_source(raw: str, root: Path) -> tuple[str, Path] | str:
    """A ``source:`` value -> ``(path relative to root, posix; the resolved file)``, or why it is refused: it
    must be a relative path inside ``root`` (also through links), of a known format, to a file that exists."""
    text = raw.strip()
    if not text:
        return "source must not be empty"
    if (
        PurePosixPath(text).is_absolute()
        or PureWindowsPath(text).is_absolute()
        or PureWindowsPath(text).drive
        or text.startswith("~")
    ):
        return f"source {raw!r} must be a relative path inside the manifest directory, not an absolute path"
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if ".." in parts:
        return f"source {raw!r} must stay inside the manifest directory (no '..')"
    rel = PurePosixPath(*parts).as_posix()
    if PurePosixPath(rel).suffix.lower() not in SOURCE_FORMATS:
        return f"source {raw!r} must be a .jsonl, .csv or .json (Encord registration) file"
    try:
        resolved = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        return f"source file {rel!r} does not exist (paths are relative to the manifest directory)"
    if not resolved.is_relative_to(root):
        return f"source {raw!r} resolves outside the manifest directory (through a symbolic link)"
    if not resolved.is_file():
        return f"source {rel!r} is not a file"
    return rel, resolved
