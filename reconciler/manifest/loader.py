"""Manifests on disk -> a validated, positioned :class:`~reconciler.model.DesiredState`.

:func:`load_manifests` reads every ``*.yaml``/``*.yml`` file under the manifest directory, checks every
document (structure with the pydantic models of :mod:`reconciler.manifest.schema`, then the rules that need
positions or several documents), and reports every problem of the whole directory at once as
``path:line:col: message``. Warnings travel in ``DesiredState.warnings``.

The checks run on the plain YAML data (not on the pydantic result), so that one malformed field does not hide
the problems of its neighbours; records are only used when nothing at all is wrong.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import logging
import os
import re
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from reconciler.errors import (
    Diagnostic,
    ManifestParseError,
    ManifestValidationError,
    SourceLocation,
)
from reconciler.manifest.schema import API_VERSION, KIND_MODELS, TYPE_NAMES
from reconciler.manifest.yamlio import YamlDocument, YamlPath, read_documents
from reconciler.model import (
    Assignment,
    DesiredKey,
    DesiredState,
    FileManifest,
    FileSelector,
    Limits,
    Mode,
    OnMissing,
    SchemaManifest,
    SelectorKind,
    SourceSpec,
    UndeclaredKeys,
    Workspace,
    WorkspaceSettings,
)
from reconciler.providers import registry
from reconciler.schema import (
    EMBEDDING_ACTIVE_LIMIT,
    EMBEDDING_MAX,
    ENUM_MAX_VALUES,
    TYPE_ALIASES,
    Deletion,
    FieldSpec,
    KeyType,
    check_key_name,
)
from reconciler.values import check_keyframes, check_value, describe_value

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

    from reconciler.types import JsonValue

__all__ = ["MANIFEST_SUFFIXES", "load_manifests"]

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".yaml", ".yml")
#: ``.json`` is Encord's registration (cloud-integration upload) JSON, read by manifest/source.py.
_SOURCE_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".json": "registration"}
_SELECTORS = ("glob", "name", "uuid")
_YAML11_BOOLS = frozenset({"yes", "no", "on", "off", "y", "n", "true", "false"})
_UNDECLARED = "is not declared in the metadata schema"


def load_manifests(root: str | Path, *, check_sources: bool = False) -> DesiredState:
    """Load and validate every manifest under ``root``.

    ``check_sources=True`` also reads every ``source:`` file row by row and checks its values against the
    declared schema (what ``validate`` wants; ``plan`` reads the rows anyway and need not pay twice).

    Raises ManifestValidationError carrying every error found (sorted by location).
    """
    loader = _Loader(Path(root))
    return loader.load(check_sources=check_sources)


# --------------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Doc:
    """One YAML document of one file, with what messages need to point into it."""

    rel: str
    yaml: YamlDocument

    @property
    def data(self) -> dict[str, JsonValue]:
        return self.yaml.data if isinstance(self.yaml.data, dict) else {}

    @property
    def location(self) -> SourceLocation:
        """The document itself: line 1 for a file's first document, else where its content starts."""
        if self.yaml.index == 0:
            return SourceLocation(self.rel, 1, 1)
        return SourceLocation(self.rel, self.yaml.line, self.yaml.column)

    @property
    def name(self) -> str:
        loc = self.location
        return self.rel if loc.line in (None, 1) else f"{self.rel}:{loc.line}"

    def at(self, path: YamlPath) -> SourceLocation:
        """The value at ``path``."""
        if not path:
            return self.location
        line, column = self.yaml.value_position(path)
        return SourceLocation(self.rel, line, column)

    def key_at(self, path: YamlPath) -> SourceLocation:
        """The key of the mapping entry at ``path``."""
        if not path:
            return self.location
        line, column = self.yaml.key_position(path)
        return SourceLocation(self.rel, line, column)


@dataclass
class _Claim:
    """An exact selector of one manifest, for the offline conflict check."""

    manifest: str
    overwrite: bool
    keys: frozenset[str]  # keys given for the file (defaults + the entry's metadata)
    patterns: tuple[str, ...]  # owns
    location: SourceLocation


@dataclass
class _Collected:
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)

    def error(self, location: SourceLocation, message: str) -> None:
        self.errors.append(Diagnostic(location, message))

    def warn(self, location: SourceLocation, message: str) -> None:
        self.warnings.append(Diagnostic(location, message, "warning"))


def _suggest(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _quote_list(items: Sequence[str]) -> str:
    return ", ".join(items)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------- the loader


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.out = _Collected()
        self.workspaces: list[tuple[_Doc, Workspace]] = []
        self.schemas: list[tuple[_Doc, SchemaManifest]] = []
        self.files: list[tuple[_Doc, FileManifest]] = []
        # Assignments to check against the schema once it is known: (key, value, location).
        self.assignments: list[tuple[str, JsonValue, SourceLocation]] = []
        # Key names whose schema entry is itself broken: their values are not checked (no cascade).
        self.broken_keys: set[str] = set()
        self.claims: dict[tuple[str, SelectorKind, str], list[_Claim]] = {}
        self.digest_parts: dict[str, str] = {}

    # ----------------------------------------------------------------------------------------- driver

    def load(self, *, check_sources: bool) -> DesiredState:
        if not self.root.is_dir():
            self.out.error(SourceLocation(str(self.root)), "manifest directory does not exist")
            raise ManifestValidationError(self.out.errors)
        for file in self._discover():
            rel = file.relative_to(self.root).as_posix()
            self._load_file(file, rel)
        self._check_singletons()
        schema = self.schemas[0][1] if self.schemas else None
        undeclared = (
            self.workspaces[0][1].settings.undeclared_keys if self.workspaces else UndeclaredKeys.WARN
        )
        self._check_values(schema, undeclared)
        self._check_conflicts()
        if check_sources:
            self._check_sources(schema, undeclared)
        if self.out.errors:
            raise ManifestValidationError(self.out.errors)
        workspace = self.workspaces[0][1]
        state = DesiredState(
            root=str(self.root),
            workspace=workspace,
            schema=schema,
            files=tuple(m for _, m in self.files),
            warnings=tuple(sorted(set(self.out.warnings))),
            digest=self._digest(),
        )
        logger.debug(
            "loaded %d manifest document(s) from %s (digest %s)",
            len(self.files) + len(self.schemas) + 1,
            self.root,
            state.digest,
        )
        return state

    def _discover(self) -> list[Path]:
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            # Hidden directories (.git, .reconciler, ...) hold no manifests.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if not name.startswith(".") and name.lower().endswith(MANIFEST_SUFFIXES):
                    found.append(Path(dirpath, name))
        return sorted(found, key=lambda p: p.relative_to(self.root).as_posix())

    def _load_file(self, file: Path, rel: str) -> None:
        if not file.is_file():  # a device, pipe or broken link named *.yaml would be read forever or fail
            self.out.error(
                SourceLocation(rel), "not a regular file (a link to a device, a pipe, or a broken link)"
            )
            return
        try:
            docs = read_documents(file, rel)
        except ManifestParseError as exc:
            self.out.error(exc.location or SourceLocation(rel), _bare_message(exc))
            return
        except ManifestValidationError as exc:
            self.out.errors.extend(exc.issues)
            return
        finally:
            self._add_to_digest(file, rel)
        for yaml_doc in docs:
            self._load_document(_Doc(rel, yaml_doc))

    def _add_to_digest(self, file: Path, rel: str) -> None:
        if rel in self.digest_parts:
            return
        h = hashlib.sha256()
        try:
            with file.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return  # reported by whoever reads the file
        self.digest_parts[rel] = h.hexdigest()

    def _digest(self) -> str:
        h = hashlib.sha256()
        for rel in sorted(self.digest_parts):
            h.update(f"{rel}\0{self.digest_parts[rel]}\n".encode())
        return "sha256:" + h.hexdigest()

    # ----------------------------------------------------------------------------------------- documents

    def _load_document(self, doc: _Doc) -> None:
        data = doc.yaml.data
        if data is None:
            return  # an empty document (e.g. a trailing ---)
        if not isinstance(data, dict):
            self.out.error(
                doc.at(()),
                f"a manifest document must be a mapping (apiVersion, kind, ...), got {describe_value(data)}",
            )
            return
        if "apiVersion" not in data:
            self.out.error(doc.location, f"missing apiVersion (expected apiVersion: {API_VERSION})")
        elif data["apiVersion"] != API_VERSION:
            got = data["apiVersion"]
            shown = repr(got) if isinstance(got, str) else describe_value(got)
            self.out.error(
                doc.at(("apiVersion",)), f"unsupported apiVersion {shown} (expected {API_VERSION!r})"
            )
        kinds = sorted(KIND_MODELS)
        kind = data.get("kind")
        if "kind" not in data:
            self.out.error(doc.location, f"missing kind (one of {_quote_list(kinds)})")
            return
        if not isinstance(kind, str) or kind not in KIND_MODELS:
            shown = repr(kind) if isinstance(kind, str) else describe_value(kind)
            hint = _suggest(kind, kinds) if isinstance(kind, str) else None
            extra = f"; did you mean {hint!r}?" if hint else ""
            self.out.error(
                doc.at(("kind",)), f"unknown kind {shown} (expected one of {_quote_list(kinds)}){extra}"
            )
            return
        model = KIND_MODELS[kind]
        patched = dict(data)
        patched["apiVersion"] = API_VERSION  # reported above; not again by pydantic
        try:
            model.model_validate(patched)
        except ValidationError as exc:
            for detail in exc.errors(include_url=False):
                self._pydantic_problem(doc, model, detail)
        if kind == "Workspace":
            self.workspaces.append((doc, self._workspace(doc)))
        elif kind == "MetadataSchema":
            self.schemas.append((doc, self._schema(doc)))
        else:
            self.files.append((doc, self._file_manifest(doc)))

    # ----------------------------------------------------------------------------------------- pydantic

    def _pydantic_problem(self, doc: _Doc, model: type[BaseModel], detail: ErrorDetails) -> None:
        kind = detail["type"]
        path = _data_path(doc.data, tuple(detail["loc"]))
        value = detail.get("input")
        ctx: Mapping[str, Any] = detail.get("ctx") or {}
        field_name = next((p for p in reversed(path) if isinstance(p, str)), "")
        if kind == "extra_forbidden":
            allowed = _allowed_fields(model, path[:-1])
            hint = _suggest(field_name, allowed)
            if hint:
                message = f"unknown field {field_name!r}; did you mean {hint!r}?"
            elif allowed:
                message = f"unknown field {field_name!r} (allowed fields: {_quote_list(allowed)})"
            else:
                message = f"unknown field {field_name!r}"
            self.out.error(doc.key_at(path), message)
            return
        if kind == "missing":
            self.out.error(doc.at(path[:-1]), f"missing required field {field_name!r}")
            return
        location = doc.at(path)
        if kind in ("bool_type", "bool_parsing"):
            hint = ""
            if isinstance(value, str) and value.lower() in _YAML11_BOOLS:
                hint = " (YAML 1.2: write true or false)"
            message = f"expected a boolean, got {describe_value(value)}{hint}"
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            message = f"expected an integer, got {describe_value(value)}"
        elif kind in ("float_type", "float_parsing", "finite_number"):
            message = f"expected a number, got {describe_value(value)}"
        elif kind == "string_type":
            hint = " (quote it to make it text)" if isinstance(value, int | float) else ""
            message = f"expected a string, got {describe_value(value)}{hint}"
        elif kind == "literal_error":
            message = self._literal_message(path, field_name, value, str(ctx.get("expected", "")))
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            if len(path) == 2 and path[0] == "keys":
                message = f"expected a type name (e.g. varchar) or a mapping with a type, got {describe_value(value)}"
            else:
                message = f"expected a mapping, got {describe_value(value)}"
        elif kind == "list_type":
            message = f"expected a list, got {describe_value(value)}"
        elif kind in ("greater_than_equal", "greater_than"):
            bound = ctx.get("ge", ctx.get("gt"))
            word = "at least" if kind == "greater_than_equal" else "more than"
            message = f"{field_name} must be {word} {bound}, got {value}"
        elif kind in ("less_than_equal", "less_than"):
            bound = ctx.get("le", ctx.get("lt"))
            word = "at most" if kind == "less_than_equal" else "less than"
            message = f"{field_name} must be {word} {bound}, got {value}"
        else:
            raw = detail["msg"]
            message = raw[:1].lower() + raw[1:]
        self.out.error(location, message)

    def _literal_message(self, path: YamlPath, field_name: str, value: object, expected: str) -> str:
        choices = re.findall(r"'([^']*)'", expected)
        is_type = len(path) >= 2 and path[0] == "keys" and (len(path) == 2 or path[-1] == "type")
        if is_type:
            choices = [c for c in choices if c not in TYPE_ALIASES]
        hint = _suggest(value, choices) if isinstance(value, str) else None
        extra = f"; did you mean {hint!r}?" if hint else ""
        shown = repr(value) if isinstance(value, str) else describe_value(value)
        if is_type:
            return f"unknown type {shown} (expected one of {_quote_list(choices)}){extra}"
        return f"invalid value {shown} for {field_name!r} (expected one of {_quote_list(choices)}){extra}"

    # ----------------------------------------------------------------------------------------- Workspace

    def _workspace(self, doc: _Doc) -> Workspace:
        data = doc.data
        provider = _mapping(data.get("provider"))
        ptype = _text(provider.get("type"), registry.DEFAULT_TYPE)
        own = registry.kind(ptype).workspace_keys if ptype in registry.PROVIDERS else None
        for name in provider:
            owner = None if own is None or name in own else registry.workspace_key_owner(name)
            if owner is not None and ptype != owner:
                self.out.error(
                    doc.key_at(("provider", name)),
                    f"{name!r} applies only to provider type {owner} (this provider is {ptype})",
                )
        for name in ("path", "seed"):
            given = provider.get(name)
            if isinstance(given, str) and not given.strip():
                self.out.error(doc.at(("provider", name)), f"provider {name} must not be empty")
        settings = _mapping(data.get("settings"))
        limits = _mapping(settings.get("limits"))
        undeclared = settings.get("undeclared_keys", "warn")
        share = limits.get("max_removed_share")
        config = registry.config_from_workspace(provider)
        parallelism = _opt_int(settings.get("parallelism"))
        return Workspace(
            provider=config,
            settings=WorkspaceSettings(
                parallelism=parallelism if parallelism is not None else 4,
                journal_dir=_text(settings.get("journal_dir"), ".reconciler/journal"),
                undeclared_keys=UndeclaredKeys(undeclared)
                if undeclared in ("error", "warn", "allow")
                else UndeclaredKeys.WARN,
                limits=Limits(
                    max_files=_opt_int(limits.get("max_files")),
                    max_removed_keys=_opt_int(limits.get("max_removed_keys")),
                    max_removed_share=float(share)
                    if isinstance(share, int | float) and not isinstance(share, bool)
                    else None,
                ),
            ),
            location=doc.location,
        )

    # ----------------------------------------------------------------------------------------- MetadataSchema

    def _schema(self, doc: _Doc) -> SchemaManifest:
        data = doc.data
        keys: dict[str, DesiredKey] = {}
        renamed: dict[str, SourceLocation] = {}
        for key, entry in _mapping(data.get("keys")).items():
            path: YamlPath = ("keys", key)
            problem = check_key_name(key)
            if problem is not None:
                self.out.error(doc.key_at(path), problem)
            spec, renamed_from = self._key_spec(doc, key, entry, path, renamed)
            if spec is None:
                self.broken_keys.add(key)
                continue
            keys[key] = DesiredKey(spec=spec, location=doc.key_at(path), renamed_from=renamed_from)
        prune = data.get("prune", False)
        return SchemaManifest(keys=keys, location=doc.location, prune=prune is True)

    def _key_spec(
        self,
        doc: _Doc,
        key: str,
        entry: JsonValue,
        path: YamlPath,
        renamed: dict[str, SourceLocation],
    ) -> tuple[FieldSpec | None, str | None]:
        """The FieldSpec of one schema entry (``None`` when it is broken; every problem is reported)."""
        if isinstance(entry, str):
            body: dict[str, JsonValue] = {"type": entry}
            type_path = path
        elif isinstance(entry, dict):
            body = entry
            type_path = (*path, "type")
        else:
            return None, None  # reported by pydantic
        type_name = body.get("type")
        if not isinstance(type_name, str) or type_name not in TYPE_NAMES:
            return None, None  # reported by pydantic
        if type_name in TYPE_ALIASES:
            modern = TYPE_ALIASES[type_name].value
            self.out.warn(
                doc.at(type_path),
                f"type {type_name!r} is deprecated; write {modern!r} (same meaning)",
            )
            ktype = TYPE_ALIASES[type_name]
        else:
            ktype = KeyType(type_name)
        ok = True
        values: tuple[str, ...] = ()
        size: int | None = None
        raw_values = body.get("values")
        raw_size = body.get("size")
        if ktype is not KeyType.ENUM and "values" in body:
            self.out.error(doc.key_at((*path, "values")), "'values' applies only to enum keys")
            ok = False
        if ktype is not KeyType.EMBEDDING and "size" in body:
            self.out.error(doc.key_at((*path, "size")), "'size' applies only to embedding keys")
            ok = False
        if ktype is KeyType.ENUM:
            if raw_values is None:
                self.out.error(
                    doc.at(path), f"enum key {key!r} needs values (a list of 1 to {ENUM_MAX_VALUES} strings)"
                )
                ok = False
            elif isinstance(raw_values, list):
                values, values_ok = self._enum_values(doc, key, raw_values, (*path, "values"))
                ok = ok and values_ok
            else:
                ok = False
        if ktype is KeyType.EMBEDDING:
            if raw_size is None:
                self.out.error(doc.at(path), f"embedding key {key!r} needs a size (1 to {EMBEDDING_MAX})")
                ok = False
            elif _is_int(raw_size):
                assert isinstance(raw_size, int)
                size = raw_size
                if not 1 <= size <= EMBEDDING_MAX:
                    self.out.error(
                        doc.at((*path, "size")), f"embedding size must be 1 to {EMBEDDING_MAX}, got {size}"
                    )
                    ok = False
                elif size > EMBEDDING_ACTIVE_LIMIT:
                    self.out.warn(
                        doc.at((*path, "size")),
                        f"embedding size {size} is above {EMBEDDING_ACTIVE_LIMIT}: "
                        f"Active accepts at most {EMBEDDING_ACTIVE_LIMIT}",
                    )
            else:
                ok = False
        deleted = body.get("deleted")
        deletion = Deletion(deleted) if deleted in ("soft", "hard") else None
        renamed_from = body.get("renamed_from")
        old_name: str | None = None
        if isinstance(renamed_from, str):
            rpath = (*path, "renamed_from")
            problem = check_key_name(renamed_from)
            if renamed_from == key:
                self.out.error(doc.at(rpath), f"renamed_from must name a different key than {key!r}")
            elif problem is not None:
                self.out.error(doc.at(rpath), f"renamed_from: {problem}")
            elif renamed_from in renamed:
                self.out.error(
                    doc.at(rpath),
                    f"key {renamed_from!r} is already renamed at {renamed[renamed_from]}; "
                    "a key can be renamed only once",
                )
            else:
                renamed[renamed_from] = doc.at(rpath)
                old_name = renamed_from
        if not ok:
            return None, None
        return FieldSpec(ktype, values=values, size=size, deleted=deletion), old_name

    def _enum_values(
        self, doc: _Doc, key: str, raw: list[JsonValue], path: YamlPath
    ) -> tuple[tuple[str, ...], bool]:
        ok = True
        if not raw:
            self.out.error(doc.at(path), f"enum key {key!r} needs at least one value")
            ok = False
        if len(raw) > ENUM_MAX_VALUES:
            self.out.error(
                doc.at(path), f"an enum has at most {ENUM_MAX_VALUES} values, {key!r} has {len(raw)}"
            )
            ok = False
        seen: dict[str, int] = {}
        values: list[str] = []
        for i, value in enumerate(raw):
            if not isinstance(value, str):
                ok = False  # reported by pydantic
                continue
            if value in seen:
                here, first = doc.at((*path, i)), doc.at((*path, seen[value]))
                self.out.error(here, f"duplicate enum value {value!r} (first at {_where(first, here)})")
                ok = False
                continue
            seen[value] = i
            values.append(value)
        return tuple(values), ok

    # ----------------------------------------------------------------------------------------- FileMetadata

    def _file_manifest(self, doc: _Doc) -> FileManifest:
        data = doc.data
        folder = _text(data.get("folder"), "")
        if isinstance(data.get("folder"), str) and not folder.strip():
            self.out.error(
                doc.at(("folder",)), "folder must not be empty (use a folder path or a folder UUID)"
            )
        mode_raw = data.get("mode", "merge")
        mode = Mode(mode_raw) if mode_raw in ("merge", "overwrite") else Mode.MERGE
        owns_raw = data.get("owns")
        owns: tuple[str, ...] = ()
        if isinstance(owns_raw, list):
            owns = tuple(p for p in owns_raw if isinstance(p, str))
            for i, pattern in enumerate(owns_raw):
                if isinstance(pattern, str) and not pattern.strip():
                    self.out.error(doc.at(("owns", i)), "an owns pattern must not be empty")
        if "owns" in data and mode is Mode.OVERWRITE:
            self.out.error(
                doc.key_at(("owns",)),
                "owns applies only to mode: merge (an overwrite manifest owns every key of the files it selects)",
            )
        on_missing_raw = data.get("on_missing", "error")
        on_missing = (
            OnMissing(on_missing_raw) if on_missing_raw in ("error", "warn", "ignore") else OnMissing.ERROR
        )
        defaults = self._metadata(doc, data.get("defaults"), ("defaults",))
        selectors: list[FileSelector] = []
        exact_seen: dict[tuple[SelectorKind, str], SourceLocation] = {}
        manifest_name = doc.name
        files_raw = data.get("files")
        for i, entry in enumerate(files_raw if isinstance(files_raw, list) else []):
            if not isinstance(entry, dict):
                continue  # reported by pydantic
            selector = self._selector(doc, entry, ("files", i))
            if selector is None:
                continue
            selectors.append(selector)
            if selector.kind is SelectorKind.GLOB:
                continue
            ident = (selector.kind, selector.pattern)
            if ident in exact_seen:
                first = exact_seen[ident]
                self.out.error(
                    selector.location,
                    f"duplicate selector {selector.kind.value} {selector.pattern!r} "
                    f"(first at {_where(first, selector.location)}); "
                    "give each file one entry",
                )
                continue
            exact_seen[ident] = selector.location
            if isinstance(data.get("folder"), str) and folder.strip():
                self.claims.setdefault((folder.strip("/"), selector.kind, selector.pattern), []).append(
                    _Claim(
                        manifest=manifest_name,
                        overwrite=mode is Mode.OVERWRITE,
                        keys=frozenset(defaults) | frozenset(selector.metadata),
                        patterns=owns,
                        location=selector.location,
                    )
                )
        source = self._source(doc, data.get("source"))
        return FileManifest(
            path=doc.rel,
            folder=folder,
            mode=mode,
            files=tuple(selectors),
            location=doc.location,
            recursive=data.get("recursive") is True,
            children=data.get("children") is True,
            owns=owns,
            on_missing=on_missing,
            defaults=defaults,
            source=source,
        )

    def _selector(self, doc: _Doc, entry: dict[str, JsonValue], path: YamlPath) -> FileSelector | None:
        given = [s for s in _SELECTORS if entry.get(s) is not None]
        if not given:
            self.out.error(doc.at(path), "a files entry needs one of glob, name or uuid")
            return None
        if len(given) > 1:
            self.out.error(
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
            self.out.error(doc.at(vpath), f"{kind.value} must not be empty")
            return None
        if kind is SelectorKind.UUID:
            canonical = _canonical_uuid(pattern)
            if canonical is None:
                self.out.error(doc.at(vpath), f"uuid {pattern!r} is not a UUID")
                return None
            pattern = canonical
        metadata = self._metadata(doc, entry.get("metadata"), (*path, "metadata"))
        return FileSelector(kind=kind, pattern=pattern, metadata=metadata, location=doc.at(vpath))

    def _metadata(self, doc: _Doc, raw: JsonValue, path: YamlPath) -> dict[str, Assignment]:
        out: dict[str, Assignment] = {}
        if not isinstance(raw, dict):
            return out
        for key, value in raw.items():
            location = doc.at((*path, key))
            if key != "keyframes":
                problem = check_key_name(key)
                if problem is not None:
                    self.out.warn(doc.key_at((*path, key)), f"{problem} (Encord's rule for metadata keys)")
            out[key] = Assignment(value, location)
            self.assignments.append((key, value, location))
        return out

    def _source(self, doc: _Doc, raw: JsonValue) -> SourceSpec | None:
        if not isinstance(raw, str):
            return None  # absent, or reported by pydantic
        location = doc.at(("source",))
        text = raw.strip()
        if not text:
            self.out.error(location, "source must not be empty")
            return None
        if (
            PurePosixPath(text).is_absolute()
            or PureWindowsPath(text).is_absolute()
            or PureWindowsPath(text).drive
            or text.startswith("~")
        ):
            self.out.error(
                location,
                f"source {raw!r} must be a relative path inside the manifest directory, not an absolute path",
            )
            return None
        parts = PurePosixPath(text.replace("\\", "/")).parts
        if ".." in parts:
            self.out.error(location, f"source {raw!r} must stay inside the manifest directory (no '..')")
            return None
        rel = PurePosixPath(*parts).as_posix()
        suffix = PurePosixPath(rel).suffix.lower()
        if suffix not in _SOURCE_FORMATS:
            self.out.error(
                location, f"source {raw!r} must be a .jsonl, .csv or .json (Encord registration) file"
            )
            return None
        candidate = self.root / rel
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            self.out.error(
                location, f"source file {rel!r} does not exist (paths are relative to the manifest directory)"
            )
            return None
        if not resolved.is_relative_to(self.root):
            self.out.error(
                location, f"source {raw!r} resolves outside the manifest directory (through a symbolic link)"
            )
            return None
        if not resolved.is_file():
            self.out.error(location, f"source {rel!r} is not a file")
            return None
        self._add_to_digest(resolved, rel)
        return SourceSpec(path=rel, format=_SOURCE_FORMATS[suffix], location=location)

    # ----------------------------------------------------------------------------------------- across documents

    def _check_singletons(self) -> None:
        if not self.workspaces:
            self.out.error(
                SourceLocation("."),
                "no Workspace manifest found (add one document with kind: Workspace)",
            )
        for doc, _ in self.workspaces[1:]:
            first = self.workspaces[0][0]
            self.out.error(
                doc.location,
                f"a second Workspace: there must be exactly one (the other is at {first.location})",
            )
        for doc, _ in self.schemas[1:]:
            first = self.schemas[0][0]
            self.out.error(
                doc.location,
                f"a second MetadataSchema: there may be at most one (the other is at {first.location})",
            )

    def _check_values(self, schema: SchemaManifest | None, undeclared: UndeclaredKeys) -> None:
        keys = schema.keys if schema is not None else {}
        warned: set[str] = set()
        for key, value, location in self.assignments:
            if value is None:
                continue  # null always means "remove the key"
            if key == "keyframes":
                problem = check_keyframes(value)
                if problem is not None:
                    self.out.error(location, problem)
                continue
            declared = keys.get(key)
            if declared is not None:
                problem = check_value(key, value, declared.spec)
                if problem is not None:
                    self.out.error(location, problem)
                continue
            if schema is None or key in self.broken_keys:
                continue
            self._undeclared(key, location, undeclared, warned)

    def _undeclared(
        self, key: str, location: SourceLocation, policy: UndeclaredKeys, warned: set[str]
    ) -> None:
        if policy is UndeclaredKeys.ERROR:
            self.out.error(location, f"key {key!r} {_UNDECLARED} (settings.undeclared_keys: error)")
        elif policy is UndeclaredKeys.WARN and key not in warned:
            warned.add(key)
            self.out.warn(location, f"key {key!r} {_UNDECLARED}")

    def _check_conflicts(self) -> None:
        for (folder, kind, pattern), claims in sorted(
            self.claims.items(), key=lambda kv: kv[0][0] + kv[0][2]
        ):
            for i, later in enumerate(claims):
                for earlier in claims[:i]:
                    if earlier.manifest == later.manifest:
                        continue  # duplicates inside one manifest are reported on their own
                    what = f"{kind.value} {pattern!r} in folder {folder!r}"
                    if earlier.overwrite or later.overwrite:
                        ow, other = (earlier, later) if earlier.overwrite else (later, earlier)
                        self.out.error(
                            later.location,
                            f"conflict: {what} is selected by overwrite manifest {ow.manifest} and by "
                            f"{other.manifest} (other selector at {earlier.location}); "
                            "an overwrite manifest must be the only one selecting a file",
                        )
                        continue
                    shared = _shared_keys(earlier, later)
                    if shared:
                        self.out.error(
                            later.location,
                            f"conflict: manifests {earlier.manifest} and {later.manifest} both own "
                            f"{_quote_list([repr(k) for k in shared])} on {what} "
                            f"(other selector at {earlier.location})",
                        )

    def _check_sources(self, schema: SchemaManifest | None, undeclared: UndeclaredKeys) -> None:
        from reconciler.manifest.source import iter_source_rows

        spec_map: dict[str, FieldSpec] = (
            {k: v.spec for k, v in schema.keys.items()} if schema is not None else {}
        )
        done: set[str] = set()
        for _, manifest in self.files:
            src = manifest.source
            if src is None or src.path in done:
                continue
            done.add(src.path)
            seen_keys: set[str] = set()
            warned: set[str] = set()
            for row in iter_source_rows(self.root, src, spec_map, self.out.errors):
                if schema is None:
                    continue
                for key, value in row.values.items():
                    if key in seen_keys and undeclared is not UndeclaredKeys.ERROR:
                        continue
                    seen_keys.add(key)
                    if (
                        value is not None
                        and key != "keyframes"
                        and key not in spec_map
                        and key not in self.broken_keys
                    ):
                        self._undeclared(key, row.location, undeclared, warned)


# --------------------------------------------------------------------------------------------- small pieces


def _bare_message(exc: ManifestParseError) -> str:
    text = str(exc)
    prefix = f"{exc.location}: " if exc.location else ""
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text


def _where(first: SourceLocation, here: SourceLocation) -> str:
    """How a message names an earlier place in the same file: ``line 12`` (``line 5, column 47`` if needed)."""
    if first.line == here.line:
        return f"line {first.line}, column {first.column}"
    return f"line {first.line}"


def _mapping(value: JsonValue) -> dict[str, JsonValue]:
    return value if isinstance(value, dict) else {}


def _text(value: JsonValue, default: str) -> str:
    return value if isinstance(value, str) else default


def _opt_text(value: JsonValue) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _opt_int(value: JsonValue) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _canonical_uuid(text: str) -> str | None:
    try:
        parsed = uuidlib.UUID(text)
    except ValueError:
        return None
    canonical = str(parsed)
    return canonical if canonical == text.lower() else None


def _shared_keys(a: _Claim, b: _Claim) -> list[str]:
    """Keys (or owns patterns) both claims manage, as far as can be told without live state."""
    shared = set(a.keys & b.keys)
    shared.update(k for k in a.keys if any(fnmatch.fnmatchcase(k, p) for p in b.patterns))
    shared.update(k for k in b.keys if any(fnmatch.fnmatchcase(k, p) for p in a.patterns))
    for pa in a.patterns:
        for pb in b.patterns:
            if pa == pb or fnmatch.fnmatchcase(pa, pb) or fnmatch.fnmatchcase(pb, pa):
                shared.add(pa if len(pa) >= len(pb) else pb)
    return sorted(shared)


def _data_path(data: JsonValue, loc: tuple[int | str, ...]) -> YamlPath:
    """Turn a pydantic error location into a path in the YAML data (dropping union tags and the like)."""
    out: list[str | int] = []
    current: JsonValue = data
    last = len(loc) - 1
    for i, elem in enumerate(loc):
        if isinstance(current, dict) and isinstance(elem, str):
            if elem in current:
                out.append(elem)
                current = current[elem]
                continue
            if i == last:
                out.append(elem)  # a missing field: its name, under the mapping
            continue
        if isinstance(current, list) and isinstance(elem, int) and 0 <= elem < len(current):
            out.append(elem)
            current = current[elem]
    return tuple(out)


def _flatten(tp: Any) -> Iterator[Any]:
    args = get_args(tp)
    origin = get_origin(tp)
    if origin is not None and args and origin not in (list, dict):
        if str(origin).endswith("Annotated"):
            yield from _flatten(args[0])
            return
        for arg in args:
            yield from _flatten(arg)
        return
    yield tp


def _allowed_fields(model: type[BaseModel], path: YamlPath) -> list[str]:
    """The field names (as written in YAML) of the model found at ``path`` under ``model``."""
    current: Any = model
    for elem in path:
        current = _step(current, elem)
        if current is None:
            return []
    for candidate in _flatten(current):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return [f.alias or name for name, f in candidate.model_fields.items()]
    return []


def _step(tp: Any, elem: str | int) -> Any:
    for candidate in _flatten(tp):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel) and isinstance(elem, str):
            fields = {(f.alias or name): f for name, f in candidate.model_fields.items()}
            if elem in fields:
                return fields[elem].annotation
        origin = get_origin(candidate)
        if origin is list and isinstance(elem, int):
            return get_args(candidate)[0]
        if origin is dict and isinstance(elem, str):
            return get_args(candidate)[1]
    return None
