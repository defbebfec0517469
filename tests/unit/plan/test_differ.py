from __future__ import annotations

from reconciler.errors import SourceLocation
from reconciler.model import DesiredKey, SchemaManifest
from reconciler.plan.differ import diff_metadata, diff_schema, values_equal
from reconciler.plan.model import FieldChange, KeyAction, KeyChange, SchemaAction
from reconciler.schema import Deletion, FieldSpec, KeyType, SchemaSpec, parse_wire_schema
from reconciler.types import JsonValue

LOC = SourceLocation("schema.yaml", 3, 3)


def desired(prune: bool = False, **keys: FieldSpec) -> SchemaManifest:
    return SchemaManifest({k.replace("__", "."): DesiredKey(v, LOC) for k, v in keys.items()}, LOC, prune)


def live(wire: dict) -> SchemaSpec:
    return parse_wire_schema(wire)


def test_values_equal_keeps_booleans_apart_from_numbers():
    assert values_equal(1, 1.0)
    assert not values_equal(True, 1)
    assert not values_equal(0, False)
    assert values_equal([1, {"a": True}], [1.0, {"a": True}])
    assert not values_equal("1", 1)
    assert not values_equal(None, {})


def test_diff_metadata_sorted_add_update_remove_with_nested_changes():
    before: dict[str, JsonValue] = {"b": 1, "a": "x", "kf": [13, 17], "gone": True}
    after: dict[str, JsonValue] = {"b": 2, "a": "x", "kf": [13, 17, 19], "new": None}
    assert diff_metadata(before, after) == (
        KeyChange("b", KeyAction.UPDATE, 1, 2),
        KeyChange("gone", KeyAction.REMOVE, True, None),
        KeyChange("kf", KeyAction.UPDATE, [13, 17], [13, 17, 19], (FieldChange("[2]", None, 19),)),
        KeyChange("new", KeyAction.ADD, None, None),
    )


def test_diff_metadata_bool_vs_int_is_a_change():
    assert diff_metadata({"k": 1}, {"k": True}) == (KeyChange("k", KeyAction.UPDATE, 1, True),)


def test_schema_create_and_safe_enum_extension():
    d = desired(
        capture__time=FieldSpec(KeyType.DATETIME),
        weather=FieldSpec(KeyType.ENUM, values=("rain", "snow", "fog")),
    )
    sd = diff_schema(d, live({"weather": {"ty": "enum", "values": ["rain", "snow"]}}))
    assert [(c.key, c.action, c.destructive, c.reason) for c in sd.changes] == [
        ("capture.time", SchemaAction.CREATE, False, "new key"),
        ("weather", SchemaAction.UPDATE, False, "adds enum values fog"),
    ]
    assert sd.errors == ()
    assert sd.after.keys["capture.time"] == FieldSpec(KeyType.DATETIME)


def test_schema_destructive_changes():
    d = desired(
        weather=FieldSpec(KeyType.ENUM, values=("rain",)),
        clip=FieldSpec(KeyType.EMBEDDING, size=256),
        n=FieldSpec(KeyType.ENUM, values=("a",)),
        note=FieldSpec(KeyType.VARCHAR, deleted=Deletion.SOFT),
        hard=FieldSpec(KeyType.VARCHAR, deleted=Deletion.HARD),
        txt=FieldSpec(KeyType.TEXT),
    )
    sd = diff_schema(
        d,
        live(
            {
                "weather": {"ty": "enum", "values": ["rain", "snow"]},
                "clip": {"ty": "embedding", "size": 512, "api": None},
                "n": {"ty": "variant", "hint": "number"},
                "note": {"ty": "variant", "hint": "varchar"},
                "hard": {"ty": "variant", "hint": "varchar"},
                "txt": {"ty": "varchar", "max_length": 8192},
            }
        ),
    )
    got = {c.key: (c.action.value, c.destructive, c.reason) for c in sd.changes}
    assert got == {
        "weather": ("update", True, "removes enum values snow (files holding them become invalid)"),
        "clip": ("update", True, "changes the embedding size 512 -> 256"),
        "n": ("update", True, "changes the type number -> enum[a]"),
        "note": ("delete", True, "soft delete (restorable)"),
        "hard": ("delete", True, "hard delete (not restorable)"),
        "txt": ("update", False, "changes the text hint"),
    }


def test_legacy_explicit_type_equals_variant_no_change():
    d = desired(n=FieldSpec(KeyType.NUMBER), b=FieldSpec(KeyType.BOOLEAN))
    sd = diff_schema(
        d, live({"n": {"ty": "number", "format": "F64"}, "b": {"ty": "variant", "hint": "boolean"}})
    )
    assert sd.changes == ()


def test_restore_and_impossible_changes():
    d = desired(
        a=FieldSpec(KeyType.TEXT),
        e=FieldSpec(KeyType.ENUM, values=("x",)),
        h=FieldSpec(KeyType.VARCHAR),
        s=FieldSpec(KeyType.NUMBER),
    )
    sd = diff_schema(
        d,
        live(
            {
                "a": {"ty": "tombstone", "deleted_ty": {"ty": "variant", "hint": "text"}},
                "e": {"ty": "tombstone", "deleted_ty": {"ty": "embedding", "size": 3, "api": None}},
                "h": {"ty": "tombstone", "deleted_ty": None},
                "s": {"ty": "tombstone", "deleted_ty": {"ty": "variant", "hint": "varchar"}},
            }
        ),
    )
    assert [(c.key, c.action.value, c.destructive) for c in sd.changes] == [
        ("a", "restore", False),
        ("s", "restore", True),
    ]
    assert [str(e) for e in sd.errors] == [
        "schema.yaml:3:3: schema key 'e' is soft-deleted as embedding(3); Encord cannot restore it as enum[x] "
        "(restore it with its old type, or use a new key name)",
        "schema.yaml:3:3: schema key 'h' was hard-deleted in Encord and cannot be added again",
    ]


def test_prune_soft_deletes_undeclared_live_keys():
    sd = diff_schema(
        desired(prune=True, a=FieldSpec(KeyType.TEXT)),
        live({"a": {"ty": "variant", "hint": "text"}, "old": {"ty": "variant", "hint": "number"}}),
    )
    assert [(c.key, c.action.value, c.destructive) for c in sd.changes] == [("old", "delete", True)]
    assert sd.after.keys["old"].deleted is Deletion.SOFT


def test_no_schema_manifest_means_no_schema_changes():
    live_schema = live({"a": {"ty": "variant", "hint": "text"}})
    sd = diff_schema(None, live_schema)
    assert sd.changes == () and sd.after == live_schema
