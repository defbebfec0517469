"""The on-disk models and the JSON Schema printed by ``reconciler schema-json``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from reconciler.manifest.schema import (
    KIND_MODELS,
    FileMetadataDoc,
    MetadataSchemaDoc,
    WorkspaceDoc,
    manifest_json_schema,
)


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/$defs/")
    target: dict[str, Any] = schema["$defs"][ref.removeprefix("#/$defs/")]
    return target


def test_json_schema_chooses_the_kind_by_its_kind_field() -> None:
    schema = manifest_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    json.dumps(schema)  # plain JSON
    assert "oneOf" not in schema and "discriminator" not in schema  # standard keywords only (strict ajv)
    assert schema["required"] == ["apiVersion", "kind"]
    assert schema["properties"]["kind"]["enum"] == ["Workspace", "MetadataSchema", "FileMetadata"]
    kinds = {}
    for branch in schema["allOf"]:
        assert branch["if"] == {
            "type": "object",
            "properties": {"kind": {"const": branch["if"]["properties"]["kind"]["const"]}},
            "required": ["kind"],
        }
        model = _resolve(schema, branch["then"])
        assert model["type"] == "object"
        assert model["additionalProperties"] is False
        assert model["properties"]["apiVersion"]["const"] == "reconciler/v1"
        assert model["properties"]["kind"]["const"] == branch["if"]["properties"]["kind"]["const"]
        kinds[model["properties"]["kind"]["const"]] = model
        assert {"apiVersion", "kind"} <= set(model["required"])
    assert set(kinds) == {"Workspace", "MetadataSchema", "FileMetadata"}
    assert kinds["FileMetadata"]["required"] == ["apiVersion", "kind"]


def test_every_field_has_a_description() -> None:
    schema = manifest_json_schema()
    for name, definition in schema["$defs"].items():
        for field, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"


def test_every_ref_resolves() -> None:
    schema = manifest_json_schema()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                _resolve(schema, node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)


def test_schema_keys_accept_a_shorthand_or_a_mapping() -> None:
    schema = manifest_json_schema()
    keys = schema["$defs"]["MetadataSchemaDoc"]["properties"]["keys"]
    (as_object,) = [c for c in keys["anyOf"] if c.get("type") == "object"]
    forms = as_object["additionalProperties"]["oneOf"]
    assert "varchar" in forms[0]["enum"]
    assert forms[1] == {"$ref": "#/$defs/KeyDoc"}


def test_models_are_strict_and_closed() -> None:
    doc = {"apiVersion": "reconciler/v1", "kind": "FileMetadata", "folder": "x"}
    parsed = FileMetadataDoc.model_validate(doc)
    assert (parsed.mode, parsed.on_missing, parsed.recursive) == ("merge", "error", False)
    for bad in ({"recursive": "yes"}, {"lable": 1}, {"folder": 5}):
        with pytest.raises(ValidationError):
            FileMetadataDoc.model_validate({**doc, **bad})
    with pytest.raises(ValidationError):
        MetadataSchemaDoc.model_validate(
            {"apiVersion": "reconciler/v1", "kind": "MetadataSchema", "keys": {"a": "bogus"}}
        )
    assert (
        WorkspaceDoc.model_validate({"apiVersion": "reconciler/v1", "kind": "Workspace"}).settings.parallelism
        == 4
    )


def test_kind_models() -> None:
    assert all(issubclass(m, BaseModel) for m in KIND_MODELS.values())
    assert sorted(KIND_MODELS) == ["FileMetadata", "MetadataSchema", "Workspace"]
