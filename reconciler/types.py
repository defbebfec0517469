"""Shared type aliases: JSON values and metadata dicts.

Absent and null differ in a manifest (an absent key is not managed, ``key: null`` removes the value); the
manifest records say so by which keys a mapping holds, so no sentinel value is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

__all__ = ["JsonValue", "MetadataDict", "MetadataView"]

#: Any JSON value: what a metadata value may be.
JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

#: One file's custom metadata (clientMetadata): key -> value.
MetadataDict: TypeAlias = dict[str, JsonValue]

#: A read-only view of metadata, for parameters.
MetadataView: TypeAlias = Mapping[str, JsonValue]
