"""convert: records from the validated models; the format's defaults and choices are declared once."""

from __future__ import annotations

from typing import Any

from reconciler.errors import SourceLocation
from reconciler.manifest.convert import field_spec, file_manifest_record, schema_record, workspace_record
from reconciler.manifest.diagnostics import Doc
from reconciler.manifest.schema import (
    FileMetadataDoc,
    KeyDoc,
    MetadataSchemaDoc,
    WorkspaceDoc,
    manifest_json_schema,
)
from reconciler.manifest.yamlio import load_documents
from reconciler.model import (
    DEFAULT_JOURNAL_DIR,
    DEFAULT_PARALLELISM,
    Assignment,
    FileSelector,
    Mode,
    OnMissing,
    SelectorKind,
    UndeclaredKeys,
    Workspace,
    WorkspaceSettings,
)
from reconciler.providers.encord.store import EncordConfig
from reconciler.providers.sqlite import SqliteConfig
from reconciler.schema import Deletion, FieldSpec, KeyType


def doc(text: str) -> Doc:
    (yaml_doc,) = load_documents(text, "m.yaml")
    return Doc("m.yaml", yaml_doc)


def test_a_bare_workspace_gets_the_records_defaults() -> None:
    d = doc("apiVersion: reconciler/v1\nkind: Workspace\n")
    record = workspace_record(WorkspaceDoc.model_validate(d.data), d)
    assert record == Workspace(
        SqliteConfig(),
        WorkspaceSettings(),
        SourceLocation("m.yaml", 1, 1),
    )
    assert record.settings.parallelism == DEFAULT_PARALLELISM
    assert record.settings.journal_dir == DEFAULT_JOURNAL_DIR


def test_the_json_schema_states_the_same_defaults_and_choices() -> None:
    defs: dict[str, Any] = manifest_json_schema()["$defs"]
    settings = defs["SettingsDoc"]["properties"]
    assert settings["parallelism"]["default"] == DEFAULT_PARALLELISM
    assert settings["journal_dir"]["default"] == DEFAULT_JOURNAL_DIR
    assert settings["undeclared_keys"]["enum"] == [p.value for p in UndeclaredKeys]
    assert settings["undeclared_keys"]["default"] == UndeclaredKeys.WARN.value
    files = defs["FileMetadataDoc"]["properties"]
    assert files["mode"]["enum"] == [m.value for m in Mode]
    assert files["on_missing"]["enum"] == [o.value for o in OnMissing]
    assert (files["mode"]["default"], files["on_missing"]["default"]) == ("merge", "error")
    deleted = defs["KeyDoc"]["properties"]["deleted"]["anyOf"]
    assert {"type": "string", "enum": [d.value for d in Deletion]} in deleted


def test_settings_and_an_encord_provider() -> None:
    d = doc(
        "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: encord, domain: 'https://x.test'}\n"
        "settings: {parallelism: 8, undeclared_keys: error, limits: {max_removed_share: 1}}\n"
    )
    record = workspace_record(WorkspaceDoc.model_validate(d.data), d)
    assert record.provider == EncordConfig(domain="https://x.test")
    assert record.settings.parallelism == 8
    assert record.settings.undeclared_keys is UndeclaredKeys.ERROR
    assert record.settings.limits.max_removed_share == 1.0
    assert isinstance(record.settings.limits.max_removed_share, float)


def test_schema_keys_shorthand_aliases_and_full_forms() -> None:
    assert field_spec("string") == FieldSpec(KeyType.VARCHAR)
    assert field_spec(KeyDoc(type="enum", values=["b", "a"])) == FieldSpec(KeyType.ENUM, values=("b", "a"))
    d = doc(
        "apiVersion: reconciler/v1\nkind: MetadataSchema\nprune: true\nkeys:\n  a: datetime\n"
        "  b: {type: embedding, size: 3, deleted: soft, renamed_from: c}\n"
    )
    record = schema_record(MetadataSchemaDoc.model_validate(d.data), d)
    assert record.prune is True
    assert record.keys["a"].spec == FieldSpec(KeyType.DATETIME)
    assert record.keys["b"].spec == FieldSpec(KeyType.EMBEDDING, size=3, deleted=Deletion.SOFT)
    assert (record.keys["b"].renamed_from, record.keys["b"].location) == ("c", SourceLocation("m.yaml", 6, 3))


def test_a_file_manifest_with_its_positions() -> None:
    d = doc(
        "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: f\nmode: overwrite\non_missing: warn\n"
        "defaults: {a: 1}\nfiles:\n  - uuid: 5E0B6A0E-2F1C-4B7E-9C51-0C2F6D1C9A10\n    metadata: {b: null}\n"
        "  - glob: '*.jpg'\n"
    )
    record = file_manifest_record(FileMetadataDoc.model_validate(d.data), d, None)
    assert (record.folder, record.mode, record.on_missing) == ("f", Mode.OVERWRITE, OnMissing.WARN)
    assert record.defaults == {"a": Assignment(1, SourceLocation("m.yaml", 6, 15))}
    assert record.files == (
        FileSelector(
            SelectorKind.UUID,
            "5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10",
            {"b": Assignment(None, SourceLocation("m.yaml", 9, 19))},
            SourceLocation("m.yaml", 8, 11),
        ),
        FileSelector(SelectorKind.GLOB, "*.jpg", {}, SourceLocation("m.yaml", 10, 11)),
    )


def test_type_names_are_the_declarable_key_types_and_their_aliases() -> None:
    from reconciler.manifest.schema import TYPE_NAMES
    from reconciler.schema import TYPE_ALIASES

    assert set(TYPE_NAMES) == {t.value for t in KeyType if t is not KeyType.USER} | set(TYPE_ALIASES)
