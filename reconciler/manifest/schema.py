"""The on-disk manifest format (``apiVersion: reconciler/v1``) as pydantic models, and its JSON Schema.

These models describe one YAML document each and are strict: unknown fields are errors, and no value is
coerced (``"5"`` is not a number, ``yes`` is not a boolean). They are the one description of the format: its
defaults and its choices (``mode``, ``on_missing``, ``undeclared_keys``, ``deleted``) are the constants and
enums of :mod:`reconciler.model`, and the records the planner uses are built from their validated result
(:mod:`reconciler.manifest.convert`). Checks that need positions or several documents (key names, enum sizes,
selectors, sources, values) live in :mod:`reconciler.manifest.rules` and :mod:`reconciler.manifest.crosschecks`;
:mod:`reconciler.manifest.diagnostics` turns pydantic's errors into located messages. The field descriptions
become the JSON Schema printed by ``reconciler schema-json``.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Final, Literal, Union, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Strict,
    Tag,
    TypeAdapter,
    WithJsonSchema,
)

from reconciler.model import (
    DEFAULT_JOURNAL_DIR,
    DEFAULT_PARALLELISM,
    MAX_PARALLELISM,
    Mode,
    OnMissing,
    UndeclaredKeys,
)
from reconciler.schema import Deletion

__all__ = [
    "API_VERSION",
    "KEY_ENTRY",
    "KIND_MODELS",
    "TYPE_NAMES",
    "FileEntryDoc",
    "FileMetadataDoc",
    "KeyDoc",
    "LimitsDoc",
    "ManifestDoc",
    "MetadataSchemaDoc",
    "ProviderDoc",
    "SettingsDoc",
    "WorkspaceDoc",
    "manifest_json_schema",
]

ApiVersion = Literal["reconciler/v1"]
API_VERSION: Final[str] = get_args(ApiVersion)[0]

#: Type names a manifest may declare (``string``/``long_string`` are deprecated aliases).
TypeName = Literal[
    "boolean",
    "number",
    "datetime",
    "uuid",
    "varchar",
    "text",
    "enum",
    "embedding",
    "geospatial",
    "string",
    "long_string",
]
TYPE_NAMES: Final[tuple[str, ...]] = get_args(TypeName)


def _choices(choices: type[enum.Enum]) -> WithJsonSchema:
    """A choice field's JSON Schema: the enum's values (pydantic would otherwise add a ``$defs`` entry)."""
    return WithJsonSchema({"type": "string", "enum": [c.value for c in choices]})


# An enum of reconciler.model accepted from its value (``"merge"``), the model being strict otherwise.
ModeChoice = Annotated[Mode, Strict(False), _choices(Mode)]
OnMissingChoice = Annotated[OnMissing, Strict(False), _choices(OnMissing)]
UndeclaredKeysChoice = Annotated[UndeclaredKeys, Strict(False), _choices(UndeclaredKeys)]
DeletionChoice = Annotated[Deletion, Strict(False), _choices(Deletion)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Header(_Doc):
    api_version: ApiVersion = Field(
        alias="apiVersion", description="Version of the manifest format; always `reconciler/v1`."
    )


# --------------------------------------------------------------------------------------------- Workspace


class ProviderDoc(_Doc):
    """Where the live state is read and written."""

    type: Literal["sqlite", "encord"] = Field(
        "sqlite", description="`sqlite` (embedded store, the default) or `encord` (Encord's public API)."
    )
    path: str | None = Field(
        None,
        description="sqlite: the database file, relative to the manifest directory "
        "(default `.reconciler/live.db`).",
    )
    seed: str | None = Field(
        None,
        description="sqlite: a live-state snapshot file loaded when the database does not exist yet.",
    )
    domain: str | None = Field(None, description="encord: the API domain (default `https://api.encord.com`).")
    allow_insecure_http: bool = Field(
        False, description="encord: allow a plain `http://` domain that is not on this machine."
    )


class LimitsDoc(_Doc):
    """Blast-radius limits: a plan beyond them is refused. Unset means no limit."""

    max_files: int | None = Field(None, ge=1, description="Most files one plan may change.")
    max_removed_keys: int | None = Field(
        None, ge=0, description="Most metadata values one plan may remove, over all files."
    )
    max_removed_share: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest share (0..1) of the selected files from which a plan may remove values.",
    )


class SettingsDoc(_Doc):
    """How plans and applies run."""

    parallelism: int = Field(
        DEFAULT_PARALLELISM,
        ge=1,
        le=MAX_PARALLELISM,
        description="Concurrent requests during reads and applies.",
    )
    journal_dir: str = Field(
        DEFAULT_JOURNAL_DIR,
        description="Where apply journals are written, relative to the manifest directory.",
    )
    undeclared_keys: UndeclaredKeysChoice = Field(
        UndeclaredKeys.WARN, description="What to do with metadata keys the MetadataSchema does not declare."
    )
    limits: LimitsDoc = Field(default_factory=LimitsDoc, description="Blast-radius limits.")


class WorkspaceDoc(_Header):
    """`kind: Workspace`: the provider and settings (exactly one per manifest directory)."""

    kind: Literal["Workspace"] = Field(description="`Workspace`.")
    provider: ProviderDoc = Field(default_factory=ProviderDoc, description="Where the live state is.")
    settings: SettingsDoc = Field(
        default_factory=SettingsDoc,
        description="How plans and applies run: parallelism, journal, undeclared keys, limits.",
    )


# --------------------------------------------------------------------------------------------- MetadataSchema


class KeyDoc(_Doc):
    """One schema key in full form."""

    type: TypeName = Field(description="The key's type.")
    values: list[str] | None = Field(None, description="enum: the allowed values (1 to 255, unique).")
    size: int | None = Field(None, description="embedding: the number of dimensions (1 to 4096).")
    deleted: DeletionChoice | None = Field(
        None, description="Delete the key: `soft` keeps a restorable tombstone, `hard` does not."
    )
    renamed_from: str | None = Field(
        None, description="The key's previous name, when the key was renamed (for the plan to say so)."
    )


def _key_entry_form(value: Any) -> str:
    return "shorthand" if isinstance(value, str) else "full"


KeyEntry = Annotated[
    Union[Annotated[TypeName, Tag("shorthand")], Annotated[KeyDoc, Tag("full")]],  # noqa: UP007 - tagged union
    Discriminator(_key_entry_form),
]
#: Validates one ``keys:`` entry on its own (the loader checks values against the keys that are well formed).
KEY_ENTRY: Final[TypeAdapter[TypeName | KeyDoc]] = TypeAdapter(KeyEntry)


class MetadataSchemaDoc(_Header):
    """`kind: MetadataSchema`: the organisation's metadata schema (at most one)."""

    kind: Literal["MetadataSchema"] = Field(description="`MetadataSchema`.")
    prune: bool = Field(False, description="Soft-delete (tombstone) live keys that are not listed here.")
    keys: dict[str, KeyEntry] | None = Field(
        None, description="Key name -> a type name (shorthand) or a full key definition."
    )


# --------------------------------------------------------------------------------------------- FileMetadata


class FileEntryDoc(_Doc):
    """One `files:` entry: exactly one selector (`glob`, `name` or `uuid`) and the metadata it sets."""

    glob: str | None = Field(
        None, description="Select every file whose name matches this pattern (`*`, `?`, `[...]`)."
    )
    name: str | None = Field(
        None, description="Select the file with exactly this name (relative to the folder)."
    )
    uuid: str | None = Field(None, description="Select the file with this UUID.")
    metadata: dict[str, JsonValue] | None = Field(
        None, description="Key -> value to set on the selected files; `null` removes the key."
    )
    frames: dict[str, JsonValue] | None = Field(
        None,
        description="Per-frame metadata of a video: frame number (a non-negative integer) -> key -> value, "
        "each value checked against the schema like a file's; plans show `frames[13].clip`.",
    )


class FileMetadataDoc(_Header):
    """`kind: FileMetadata`: the custom metadata of files in one folder, or of the data units of one dataset."""

    kind: Literal["FileMetadata"] = Field(description="`FileMetadata`.")
    folder: str | None = Field(
        None,
        description="Folder path from the root (names joined by `/`) or a folder UUID. Exactly one of "
        "`folder` and `dataset`.",
    )
    dataset: str | None = Field(
        None,
        description="A dataset hash (Encord's legacy datasets): `name`/`glob` match data unit titles, `uuid` "
        "a data hash. Exactly one of `folder` and `dataset`; no `recursive` or `children`.",
    )
    recursive: bool = Field(
        False, description="Selectors also match files in subfolders (name = path relative to the folder)."
    )
    children: bool = Field(
        False,
        description="Selectors also match files inside image groups, image sequences and DICOM series "
        "(named `GROUP/CHILD`).",
    )
    mode: ModeChoice = Field(
        Mode.MERGE,
        description="`merge`: write only the owned keys; `overwrite`: each selected file's metadata becomes "
        "exactly the desired dict.",
    )
    owns: list[str] | None = Field(
        None,
        description="merge mode: key patterns (fnmatch) this manifest manages on every file it selects; an "
        "owned key with no desired value is removed.",
    )
    on_missing: OnMissingChoice = Field(
        OnMissing.ERROR,
        description="What a `name`/`uuid` selector or source row that matches no live file does.",
    )
    defaults: dict[str, JsonValue] | None = Field(
        None, description="Key -> value applied to every file this manifest selects."
    )
    files: list[FileEntryDoc] | None = Field(None, description="Selectors and the metadata they set.")
    source: str | None = Field(
        None,
        description=(
            "Bulk rows: a `.jsonl` or `.csv` file, or an Encord registration (upload) `.json` file, inside the "
            "manifest directory (path relative to it)."
        ),
    )


#: The model of each ``kind``.
KIND_MODELS: Final[dict[str, type[_Header]]] = {
    get_args(m.model_fields["kind"].annotation)[0]: m
    for m in (WorkspaceDoc, MetadataSchemaDoc, FileMetadataDoc)
}

ManifestDoc = Annotated[
    Union[WorkspaceDoc, MetadataSchemaDoc, FileMetadataDoc],  # noqa: UP007 - discriminated union
    Field(discriminator="kind"),
]


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one manifest document.

    The three kinds are chosen by ``kind`` with ``if``/``then`` (not a ``oneOf``), so a validator reports a
    typo in a FileMetadata document against FileMetadata rather than against every kind; and the schema uses
    only standard keywords, so strict validators (ajv ``--strict=true``) accept it.
    """
    schema: dict[str, Any] = TypeAdapter(ManifestDoc).json_schema(by_alias=True)
    defs: dict[str, Any] = schema["$defs"]
    kinds: list[tuple[str, str]] = []
    for ref in schema["discriminator"]["mapping"].items():
        kinds.append((ref[0], ref[1]))
    kinds.sort(key=lambda kv: ("Workspace", "MetadataSchema", "FileMetadata").index(kv[0]))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "reconciler manifest (apiVersion reconciler/v1)",
        "description": "One YAML document of a reconciler manifest file: a Workspace, a MetadataSchema "
        "or a FileMetadata.",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {"const": API_VERSION, "description": "Version of the manifest format."},
            "kind": {"enum": [k for k, _ in kinds], "description": "What the document describes."},
        },
        "allOf": [
            {
                "if": {"type": "object", "properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"$ref": ref},
            }
            for kind, ref in kinds
        ],
        "$defs": defs,
    }
