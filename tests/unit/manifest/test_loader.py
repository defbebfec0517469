"""load_manifests: every bad input gives exactly one clear, located error; good input gives the records."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import ManifestValidationError, SourceLocation
from reconciler.manifest.loader import load_manifests
from reconciler.model import (
    Assignment,
    Mode,
    OnMissing,
    SelectorKind,
    UndeclaredKeys,
)
from reconciler.providers.encord.store import EncordConfig
from reconciler.providers.sqlite import SqliteConfig
from reconciler.schema import Deletion, FieldSpec, KeyType

REPO = Path(__file__).resolve().parents[3]

WORKSPACE = """\
apiVersion: reconciler/v1
kind: Workspace
"""

SCHEMA = """\
apiVersion: reconciler/v1
kind: MetadataSchema
keys:
  capture.time: datetime
  capture.weather: {type: enum, values: [rain, snow, sunny]}
  caption: text
  clip: {type: embedding, size: 4}
  site.id: uuid
  site.location: geospatial
  count: number
  reviewed: boolean
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def workspace(root: Path, *, schema: bool = True) -> None:
    write(root, "workspace.yaml", WORKSPACE)
    if schema:
        write(root, "schema.yaml", SCHEMA)


def problems(root: Path, **kwargs: bool) -> list[str]:
    with pytest.raises(ManifestValidationError) as info:
        load_manifests(root, **kwargs)
    return [str(d) for d in info.value.issues]


def files_manifest(body: str) -> str:
    return "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: traffic\n" + textwrap.dedent(body)


# --------------------------------------------------------------------------------------------- good input


def test_loads_every_kind_into_records(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "data/rows.jsonl", '{"name": "a.mp4", "metadata": {"count": 1}}\n')
    write(
        tmp_path,
        "files/cams.yaml",
        files_manifest(
            """\
            recursive: true
            owns: ["capture.*"]
            on_missing: warn
            defaults:
              capture.weather: rain
            files:
              - glob: "cam*.mp4"
                metadata: {count: 2}
              - name: cam01.mp4
                metadata:
                  capture.time: 2024-05-01T10:00:00Z
                  caption: null
                  keyframes: [1, 5]
              - uuid: 5E0B6A0E-2F1C-4B7E-9C51-0C2F6D1C9A10
            source: data/rows.jsonl
            """
        ),
    )
    state = load_manifests(tmp_path)
    assert state.root == str(tmp_path.resolve())
    assert state.workspace.provider == SqliteConfig(path=".reconciler/live.db", seed=None)
    assert state.workspace.settings.undeclared_keys is UndeclaredKeys.WARN
    assert state.schema is not None
    assert state.schema.keys["capture.weather"].spec == FieldSpec(
        KeyType.ENUM, values=("rain", "snow", "sunny")
    )
    assert state.schema.keys["clip"].spec == FieldSpec(KeyType.EMBEDDING, size=4)
    assert state.schema.keys["clip"].location == SourceLocation("schema.yaml", 7, 3)
    (m,) = state.files
    assert m.name == "files/cams.yaml"
    assert m.folder == "traffic"
    assert m.mode is Mode.MERGE
    assert m.recursive is True
    assert m.owns == ("capture.*",)
    assert m.on_missing is OnMissing.WARN
    assert m.defaults == {"capture.weather": Assignment("rain", SourceLocation("files/cams.yaml", 8, 20))}
    glob, name, uuid = m.files
    assert (glob.kind, glob.pattern) == (SelectorKind.GLOB, "cam*.mp4")
    assert glob.location == SourceLocation("files/cams.yaml", 10, 11)
    assert name.metadata == {
        "capture.time": Assignment("2024-05-01T10:00:00Z", SourceLocation("files/cams.yaml", 14, 21)),
        "caption": Assignment(None, SourceLocation("files/cams.yaml", 15, 16)),
        "keyframes": Assignment([1, 5], SourceLocation("files/cams.yaml", 16, 18)),
    }
    assert (uuid.kind, uuid.pattern) == (SelectorKind.UUID, "5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10")
    assert m.source is not None
    assert (m.source.path, m.source.format) == ("data/rows.jsonl", "jsonl")
    assert state.warnings == ()
    assert state.digest.startswith("sha256:")


def test_workspace_settings_and_limits(tmp_path: Path) -> None:
    write(
        tmp_path,
        "ws.yaml",
        """\
        apiVersion: reconciler/v1
        kind: Workspace
        provider: {type: encord, domain: "http://127.0.0.1:8080", allow_insecure_http: true}
        settings:
          parallelism: 16
          journal_dir: j
          undeclared_keys: error
          limits: {max_files: 10, max_removed_keys: 0, max_removed_share: 1}
        """,
    )
    state = load_manifests(tmp_path)
    p = state.workspace.provider
    assert p == EncordConfig(domain="http://127.0.0.1:8080", allow_insecure_http=True)
    assert p.type == "encord"
    s = state.workspace.settings
    assert (s.parallelism, s.journal_dir, s.undeclared_keys) == (16, "j", UndeclaredKeys.ERROR)
    assert (s.limits.max_files, s.limits.max_removed_keys, s.limits.max_removed_share) == (10, 0, 1.0)
    assert state.schema is None
    assert state.files == ()


def test_multi_document_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        "all.yaml",
        WORKSPACE
        + "---\n"
        + SCHEMA
        + "---\n"
        + files_manifest("files: [{name: a.mp4, metadata: {count: 1}}]\n")
        + "---\n"
        + files_manifest("mode: overwrite\nfiles: [{name: b.mp4}]\n")
        + "---\n",  # a trailing empty document is fine
    )
    state = load_manifests(tmp_path)
    assert state.schema is not None
    assert [m.name for m in state.files] == ["all.yaml:16", "all.yaml:21"]
    assert [m.mode for m in state.files] == [Mode.MERGE, Mode.OVERWRITE]


def test_hidden_directories_and_other_files_are_skipped(tmp_path: Path) -> None:
    workspace(tmp_path, schema=False)
    write(tmp_path, ".reconciler/junk.yaml", "not: [valid")
    write(tmp_path, ".git/x.yml", "kind: Nope")
    write(tmp_path, "notes.txt", "kind: Nope")
    write(tmp_path, "sub/also.yml", files_manifest("files: []\n"))
    state = load_manifests(tmp_path)
    assert [m.path for m in state.files] == ["sub/also.yml"]


def test_digest_covers_manifests_and_sources(tmp_path: Path) -> None:
    workspace(tmp_path, schema=False)
    src = write(tmp_path, "d/rows.csv", "name,count\na,1\n")
    write(tmp_path, "f.yaml", files_manifest("source: d/rows.csv\n"))
    first = load_manifests(tmp_path).digest
    expected = hashlib.sha256()
    for rel in ["d/rows.csv", "f.yaml", "workspace.yaml"]:
        expected.update(f"{rel}\0{hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest()}\n".encode())
    assert first == "sha256:" + expected.hexdigest()
    src.write_text("name,count\na,2\n")
    assert load_manifests(tmp_path).digest != first


def test_warnings_deprecated_alias_large_embedding_undeclared(tmp_path: Path) -> None:
    write(tmp_path, "workspace.yaml", WORKSPACE)
    write(
        tmp_path,
        "schema.yaml",
        """\
        apiVersion: reconciler/v1
        kind: MetadataSchema
        keys:
          old: string
          older: {type: long_string}
          big: {type: embedding, size: 3000}
        """,
    )
    write(
        tmp_path,
        "f.yaml",
        files_manifest("defaults: {other: 1, old: x}\nfiles: [{name: a, metadata: {other: 2}}]\n"),
    )
    state = load_manifests(tmp_path)
    assert state.schema is not None
    assert state.schema.keys["old"].spec.type is KeyType.VARCHAR
    assert state.schema.keys["older"].spec.type is KeyType.TEXT
    assert [str(w) for w in state.warnings] == [
        "f.yaml:4:19: key 'other' is not declared in the metadata schema",
        "schema.yaml:4:8: type 'string' is deprecated; write 'varchar' (same meaning)",
        "schema.yaml:5:17: type 'long_string' is deprecated; write 'text' (same meaning)",
        "schema.yaml:6:32: embedding size 3000 is above 2000: Active accepts at most 2000",
    ]
    assert all(w.severity == "warning" for w in state.warnings)


def test_schema_deleted_and_renamed_keys(tmp_path: Path) -> None:
    workspace(tmp_path, schema=False)
    write(
        tmp_path,
        "schema.yaml",
        """\
        apiVersion: reconciler/v1
        kind: MetadataSchema
        prune: true
        keys:
          legacy: {type: varchar, deleted: soft}
          gone: {type: number, deleted: hard}
          label: {type: varchar, renamed_from: lable}
        """,
    )
    state = load_manifests(tmp_path)
    assert state.schema is not None
    assert state.schema.prune is True
    assert state.schema.keys["legacy"].spec.deleted is Deletion.SOFT
    assert state.schema.keys["gone"].spec.deleted is Deletion.HARD
    assert state.schema.keys["label"].renamed_from == "lable"


def test_repository_demo_manifests_load() -> None:
    demo = REPO / "manifests"
    if not any(demo.rglob("*.yaml")):
        pytest.skip("the demo manifests are not written yet")
    state = load_manifests(demo, check_sources=True)
    assert state.workspace is not None


# --------------------------------------------------------------------------------------------- one error each


def test_malformed_yaml(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "files/bad.yaml", "apiVersion: reconciler/v1\nkind: FileMetadata\nfiles: [a, b\n")
    assert problems(tmp_path) == [
        "files/bad.yaml:4:1: invalid YAML: expected ',' or ']', but got the end of the file "
        "(while parsing a flow sequence started at line 3)"
    ]


def test_tab_indentation(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", "apiVersion: reconciler/v1\nkind: FileMetadata\nfiles:\n\t- name: a\n")
    assert problems(tmp_path) == [
        "f.yaml:4:1: tab characters are not allowed for indentation (indent with spaces)"
    ]


def test_unknown_field_suggests_the_closest(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "files/cams.yaml", files_manifest("files:\n  - name: a\n    metdata: {}\n"))
    assert problems(tmp_path) == ["files/cams.yaml:6:5: unknown field 'metdata'; did you mean 'metadata'?"]


def test_unknown_field_lists_the_allowed_ones(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", files_manifest("colour: red\n"))
    assert problems(tmp_path) == [
        "f.yaml:4:1: unknown field 'colour' (allowed fields: apiVersion, kind, folder, dataset, recursive, children, "
        "mode, owns, on_missing, defaults, files, source)"
    ]


def test_wrong_api_version(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", "apiVersion: reconciler/v2\nkind: FileMetadata\nfolder: x\n")
    assert problems(tmp_path) == [
        "f.yaml:1:13: unsupported apiVersion 'reconciler/v2' (expected 'reconciler/v1')"
    ]


def test_missing_api_version(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", "kind: FileMetadata\nfolder: x\n")
    assert problems(tmp_path) == ["f.yaml:1:1: missing apiVersion (expected apiVersion: reconciler/v1)"]


def test_wrong_kind(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", "apiVersion: reconciler/v1\nkind: FileMetadat\n")
    assert problems(tmp_path) == [
        "f.yaml:2:7: unknown kind 'FileMetadat' (expected one of FileMetadata, MetadataSchema, Workspace); "
        "did you mean 'FileMetadata'?"
    ]


def test_zero_workspaces(tmp_path: Path) -> None:
    write(tmp_path, "f.yaml", files_manifest(""))
    assert problems(tmp_path) == [".: no Workspace manifest found (add one document with kind: Workspace)"]


def test_two_workspaces_name_both(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "z/ws.yaml", "# another\n" + WORKSPACE)
    assert problems(tmp_path) == [
        "z/ws.yaml:1:1: a second Workspace: there must be exactly one (the other is at workspace.yaml:1:1)"
    ]


def test_two_metadata_schemas(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "z.yaml", "apiVersion: reconciler/v1\nkind: MetadataSchema\n")
    assert problems(tmp_path) == [
        "z.yaml:1:1: a second MetadataSchema: there may be at most one (the other is at schema.yaml:1:1)"
    ]


def test_invalid_key_name(tmp_path: Path) -> None:
    workspace(tmp_path, schema=False)
    write(tmp_path, "schema.yaml", "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  a/b: text\n")
    assert problems(tmp_path) == [
        "schema.yaml:4:3: invalid metadata key 'a/b': only letters, digits, '-', '_', '.' and spaces are allowed"
    ]


def test_reserved_key_in_the_schema(tmp_path: Path) -> None:
    workspace(tmp_path, schema=False)
    write(
        tmp_path,
        "schema.yaml",
        "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  key_frames: text\n",
    )
    assert problems(tmp_path) == [
        "schema.yaml:4:3: invalid metadata key 'key_frames': 'keyframes' is reserved"
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{type: enum, values: []}", "5:27: enum key 'e' needs at least one value"),
        ("{type: enum}", "5:6: enum key 'e' needs values (a list of 1 to 255 strings)"),
        ("{type: enum, values: [a, b, a]}", "5:34: duplicate enum value 'a' (first at line 5, column 28)"),
        ("{type: embedding, size: 0}", "5:30: embedding size must be 1 to 4096, got 0"),
        ("{type: embedding, size: 5000}", "5:30: embedding size must be 1 to 4096, got 5000"),
        ("{type: embedding}", "5:6: embedding key 'e' needs a size (1 to 4096)"),
        ("{type: text, size: 3}", "5:19: 'size' applies only to embedding keys"),
        ("{type: number, values: [a]}", "5:21: 'values' applies only to enum keys"),
        ("{type: text, renamed_from: e}", "5:33: renamed_from must name a different key than 'e'"),
        (
            "{type: text, renamed_from: $old}",
            "5:33: renamed_from: invalid metadata key '$old': must not start with '$'",
        ),
        (
            "nmber",
            "5:6: unknown type 'nmber' (expected one of boolean, number, datetime, uuid, varchar, text, enum, "
            "embedding, geospatial); did you mean 'number'?",
        ),
        ("5", "5:6: expected a type name (e.g. varchar) or a mapping with a type, got the number 5"),
    ],
)
def test_schema_key_problems(tmp_path: Path, entry: str, message: str) -> None:
    workspace(tmp_path, schema=False)
    write(
        tmp_path,
        "s.yaml",
        f"apiVersion: reconciler/v1\nkind: MetadataSchema\nprune: false\nkeys:\n  e: {entry}\n",
    )
    assert problems(tmp_path) == [f"s.yaml:{message}"]


def test_enum_with_too_many_values(tmp_path: Path) -> None:
    workspace(tmp_path, schema=False)
    values = ", ".join(f"v{i}" for i in range(256))
    write(
        tmp_path,
        "s.yaml",
        f"apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  e: {{type: enum, values: [{values}]}}\n",
    )
    assert problems(tmp_path) == ["s.yaml:4:27: an enum has at most 255 values, 'e' has 256"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("capture.weather: fog", "capture.weather: 'fog' is not one of the enum values [rain, snow, sunny]"),
        ("clip: [1, 2, 3]", "clip: embedding needs 4 numbers, got 3"),
        ("capture.time: yesterday", "capture.time: 'yesterday' is not an ISO 8601 datetime"),
        ("site.id: abc", "site.id: 'abc' is not a UUID"),
        ("count: '5'", "count: expected a number, got the string '5'"),
        (
            "reviewed: yes",
            "reviewed: expected a boolean, got the string 'yes' (YAML 1.2: write true or false)",
        ),
        ("site.location: {latitude: 91, longitude: 0}", "site.location: latitude 91 is out of range -90..90"),
        (
            "keyframes: [3, 1.5]",
            "keyframes: item 1 must be a non-negative integer frame number (keyframe_mode: frame), got the number 1.5",
        ),
    ],
)
def test_values_checked_against_the_declared_schema(tmp_path: Path, value: str, message: str) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", files_manifest(f"files:\n  - name: a\n    metadata:\n      {value}\n"))
    col = len(value.split(":")[0]) + 9
    assert problems(tmp_path) == [f"f.yaml:7:{col}: {message}"]


def test_null_is_always_allowed(tmp_path: Path) -> None:
    write(tmp_path, "workspace.yaml", WORKSPACE + "settings: {undeclared_keys: error}\n")
    write(tmp_path, "schema.yaml", SCHEMA + "  old: {type: text, deleted: soft}\n")
    write(tmp_path, "f.yaml", files_manifest("defaults: {count: null, nope: null, old: null}\n"))
    assert load_manifests(tmp_path).files[0].defaults["count"].value is None


def test_deleted_key_value(tmp_path: Path) -> None:
    workspace(tmp_path, schema=False)
    write(
        tmp_path,
        "schema.yaml",
        "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  old: {type: text, deleted: soft}\n",
    )
    write(tmp_path, "f.yaml", files_manifest("defaults: {old: x}\n"))
    assert problems(tmp_path) == ["f.yaml:4:17: key 'old' is deleted in the schema"]


def test_undeclared_key_as_error(tmp_path: Path) -> None:
    write(tmp_path, "workspace.yaml", WORKSPACE + "settings: {undeclared_keys: error}\n")
    write(tmp_path, "schema.yaml", SCHEMA)
    write(tmp_path, "f.yaml", files_manifest("defaults: {nope: 1}\n"))
    assert problems(tmp_path) == [
        "f.yaml:4:18: key 'nope' is not declared in the metadata schema (settings.undeclared_keys: error)"
    ]


def test_undeclared_keys_are_free_without_a_schema(tmp_path: Path) -> None:
    write(tmp_path, "workspace.yaml", WORKSPACE + "settings: {undeclared_keys: error}\n")
    write(tmp_path, "f.yaml", files_manifest("defaults: {nope: 1}\n"))
    assert load_manifests(tmp_path).warnings == ()


def test_yes_where_a_boolean_is_expected(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", files_manifest("recursive: yes\n"))
    assert problems(tmp_path) == [
        "f.yaml:4:12: expected a boolean, got the string 'yes' (YAML 1.2: write true or false)"
    ]


def test_number_given_as_string(tmp_path: Path) -> None:
    write(tmp_path, "workspace.yaml", WORKSPACE + "settings:\n  parallelism: '8'\n")
    assert problems(tmp_path) == ["workspace.yaml:4:16: expected an integer, got the string '8'"]


def test_number_out_of_range(tmp_path: Path) -> None:
    write(tmp_path, "workspace.yaml", WORKSPACE + "settings:\n  parallelism: 65\n")
    assert problems(tmp_path) == ["workspace.yaml:4:16: parallelism must be at most 64, got 65"]


def test_invalid_choice(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", files_manifest("mode: merg\n"))
    assert problems(tmp_path) == [
        "f.yaml:4:7: invalid value 'merg' for 'mode' (expected one of merge, overwrite); did you mean 'merge'?"
    ]


def test_missing_required_field(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", "apiVersion: reconciler/v1\nkind: FileMetadata\n")
    assert problems(tmp_path) == [
        "f.yaml:1:1: a FileMetadata manifest needs folder (a folder path or UUID) or dataset (a dataset hash)"
    ]


def test_provider_fields_of_the_other_type(tmp_path: Path) -> None:
    write(tmp_path, "workspace.yaml", WORKSPACE + "provider: {type: encord, path: x.db}\n")
    assert problems(tmp_path) == [
        "workspace.yaml:3:26: 'path' applies only to provider type sqlite (this provider is encord)"
    ]


def test_duplicate_exact_selectors_name_both_lines(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(
        tmp_path,
        "f.yaml",
        files_manifest(
            """\
            files:
              - name: a.mp4
              - uuid: 5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10
              - name: a.mp4
              - uuid: 5E0B6A0E-2F1C-4B7E-9C51-0C2F6D1C9A10
            """
        ),
    )
    assert problems(tmp_path) == [
        "f.yaml:7:11: duplicate selector name 'a.mp4' (first at line 5); give each file one entry",
        "f.yaml:8:11: duplicate selector uuid '5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10' (first at line 6); "
        "give each file one entry",
    ]


def test_selector_with_no_glob_name_or_uuid(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", files_manifest("files:\n  - metadata: {count: 1}\n"))
    assert problems(tmp_path) == ["f.yaml:5:5: a files entry needs one of glob, name or uuid"]


def test_selector_with_two_kinds(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", files_manifest("files:\n  - glob: '*'\n    name: a\n"))
    assert problems(tmp_path) == [
        "f.yaml:6:5: a files entry takes only one of glob, name or uuid (found glob and name)"
    ]


def test_bad_uuid_selector(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", files_manifest("files:\n  - uuid: 12-34\n"))
    assert problems(tmp_path) == ["f.yaml:5:11: uuid '12-34' is not a UUID"]


def test_owns_only_in_merge_mode(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "f.yaml", files_manifest("mode: overwrite\nowns: ['a.*']\n"))
    assert problems(tmp_path) == [
        "f.yaml:5:1: owns applies only to mode: merge (an overwrite manifest owns every key of the files it selects)"
    ]


def test_several_problems_in_one_pass(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "a.yaml", files_manifest("mode: merg\nfiles:\n  - name: x\n    metadata: {count: '1'}\n"))
    write(tmp_path, "b.yaml", "apiVersion: reconciler/v1\nkind: Bogus\n")
    write(tmp_path, "c.yaml", "a: [")
    assert problems(tmp_path) == [
        "a.yaml:4:7: invalid value 'merg' for 'mode' (expected one of merge, overwrite); did you mean 'merge'?",
        "a.yaml:7:23: count: expected a number, got the string '1'",
        "b.yaml:2:7: unknown kind 'Bogus' (expected one of FileMetadata, MetadataSchema, Workspace)",
        "c.yaml:1:5: invalid YAML: expected the node content, but found the end of the file "
        "(while parsing a flow node)",
    ]


def test_bounded_aliases(tmp_path: Path) -> None:
    workspace(tmp_path)
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcd", "bcde", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    assert problems(tmp_path) == [
        "bomb.yaml:3:4: aliases (of anchor &c) expand to more than 10,000 nodes; refusing to expand them further"
    ]


def test_small_aliases_and_merge_keys_work(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(
        tmp_path,
        "f.yaml",
        files_manifest(
            """\
            defaults: &base {count: 1, caption: hi}
            files:
              - name: a
                metadata: {<<: *base, count: 2}
            """
        ),
    )
    (m,) = load_manifests(tmp_path).files
    assert {k: a.value for k, a in m.files[0].metadata.items()} == {"count": 2, "caption": "hi"}


def test_file_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.manifest.yamlio as yamlio

    workspace(tmp_path, schema=False)
    write(tmp_path, "big.yaml", "# " + "x" * 100 + "\n")
    monkeypatch.setattr(yamlio, "MAX_MANIFEST_BYTES", 50)
    assert problems(tmp_path) == [
        "big.yaml: file is 103 bytes; a manifest may be at most 50 bytes (put bulk rows in a source: file)"
    ]


# --------------------------------------------------------------------------------------------- sources


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("../outside.jsonl", "source '../outside.jsonl' must stay inside the manifest directory (no '..')"),
        (
            "/etc/rows.jsonl",
            "source '/etc/rows.jsonl' must be a relative path inside the manifest directory, not an absolute path",
        ),
        (
            "data/rows.txt",
            "source 'data/rows.txt' must be a .jsonl, .csv or .json (Encord registration) file",
        ),
        (
            "data/missing.csv",
            "source file 'data/missing.csv' does not exist (paths are relative to the manifest directory)",
        ),
    ],
)
def test_source_path_problems(tmp_path: Path, source: str, message: str) -> None:
    workspace(tmp_path)
    write(tmp_path, "data/rows.txt", "")
    write(tmp_path, "f.yaml", files_manifest(f"source: {source}\n"))
    assert problems(tmp_path) == [f"f.yaml:4:9: {message}"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_source_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "m"
    outside = write(tmp_path, "secret.jsonl", "{}\n")
    workspace(root)
    (root / "data").mkdir()
    (root / "data" / "rows.jsonl").symlink_to(outside)
    write(root, "f.yaml", files_manifest("source: data/rows.jsonl\n"))
    assert problems(root) == [
        "f.yaml:4:9: source 'data/rows.jsonl' resolves outside the manifest directory (through a symbolic link)"
    ]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_manifest_links_out_of_the_repository_are_errors_and_not_read(tmp_path: Path) -> None:
    """A pull request can commit links; the plan job must not read (nor quote) what they point at outside."""
    root = tmp_path / "repo" / "m"
    workspace(root)
    secret = write(tmp_path, "creds", "https://x-access-token:ghp_SECRET@github.com\n")
    (root / "evil.yaml").symlink_to(secret)
    outside = tmp_path / "elsewhere"
    write(outside, "ws.yaml", "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite}\n")
    (root / "dlink").symlink_to(outside)
    got = problems(root)
    assert got == [
        "dlink: symbolic link out of the repository that holds the manifest directory; not read",
        "evil.yaml: symbolic link out of the repository that holds the manifest directory; not read",
    ]
    assert not any("SECRET" in g for g in got)
    # Inside the repository (the nearest directory above with a .git) links are followed.
    (tmp_path / "repo" / ".git").mkdir()
    (tmp_path / "repo" / "shared").mkdir()
    write(
        tmp_path / "repo" / "shared",
        "f.yaml",
        files_manifest("files:\n  - glob: '*'\n    metadata: {k: v}\n"),
    )
    (root / "evil.yaml").unlink()
    (root / "dlink").unlink()
    (root / "shared.yaml").symlink_to(tmp_path / "repo" / "shared" / "f.yaml")
    state = load_manifests(root)
    assert [m.path for m in state.files] == ["shared.yaml"]


def test_check_sources_reports_rows(tmp_path: Path) -> None:
    write(tmp_path, "workspace.yaml", WORKSPACE + "settings: {undeclared_keys: error}\n")
    write(tmp_path, "schema.yaml", SCHEMA)
    write(
        tmp_path,
        "data/rows.jsonl",
        '{"name": "a", "metadata": {"count": 1}}\n'
        '{"name": "b", "metadata": {"count": "x"}}\n'
        '{"name": "c", "metadata": {"nope": 1}}\n',
    )
    write(tmp_path, "f.yaml", files_manifest("source: data/rows.jsonl\n"))
    assert load_manifests(tmp_path).files[0].source is not None  # rows are not read by default
    assert problems(tmp_path, check_sources=True) == [
        "data/rows.jsonl:2: count: expected a number, got the string 'x'",
        "data/rows.jsonl:3: key 'nope' is not declared in the metadata schema (settings.undeclared_keys: error)",
    ]


def test_check_sources_finds_a_file_a_source_selects_twice(tmp_path: Path) -> None:
    """What plan refuses (one file selected exactly twice by one manifest), validate finds offline."""
    write(tmp_path, "workspace.yaml", WORKSPACE)
    write(tmp_path, "schema.yaml", SCHEMA)
    u = "5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10"
    write(
        tmp_path,
        "data/rows.jsonl",
        '{"name": "a", "metadata": {"count": 1}}\n'
        f'{{"uuid": "{u}", "metadata": {{"count": 1}}}}\n'
        '{"name": "b", "metadata": {"count": 2}}\n'
        '{"name": "a", "metadata": {"count": 3}}\n'
        f'{{"uuid": "{u.upper()}", "metadata": {{"count": 4}}}}\n',
    )
    write(tmp_path, "f.yaml", files_manifest("source: data/rows.jsonl\n"))
    assert problems(tmp_path, check_sources=True) == [
        "data/rows.jsonl:4: 'a' is already selected exactly at data/rows.jsonl:1 in this manifest",
        f"data/rows.jsonl:5: '{u}' is already selected exactly at data/rows.jsonl:2 in this manifest",
    ]


def test_a_block_scalar_uuid_with_its_trailing_newline_is_refused(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(
        tmp_path,
        "f.yaml",
        files_manifest(
            "files:\n  - name: a\n    metadata:\n      site.id: |\n        5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10\n"
        ),
    )
    assert problems(tmp_path) == [
        "f.yaml:7:16: site.id: '5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10\\n' is not a UUID"
    ]


def test_reserved_keys_of_a_scope_are_checked_together_and_located(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(
        tmp_path,
        "f.yaml",
        files_manifest(
            """\
            defaults:
              config: {keyframe_mode: seconds}
            files:
              - name: a
                metadata: {keyframes: [0.5, 1]}
              - name: b
                metadata:
                  config: {keyframe_mode: frame, sampling_rate: 0}
                  keyframes: [0.5]
              - name: c
                metadata:
                  config: {keyframe_mode: secs}
                  $encord: []
            """
        ),
    )
    assert problems(tmp_path) == [
        "f.yaml:12:18: keyframes: item 0 must be a non-negative integer frame number (keyframe_mode: frame), "
        "got the number 0.5",
        "f.yaml:15:31: config.keyframe_mode: invalid value 'secs' (expected one of frame, seconds); "
        "did you mean 'seconds'?",
        "f.yaml:16:16: $encord: expected a mapping, got a list of 0 item(s)",
    ]
