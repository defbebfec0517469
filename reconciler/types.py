"""Shared type aliases and the UNSET sentinel used across the package."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final, TypeAlias

__all__ = ["UNSET", "JsonValue", "MetadataDict", "Unset"]

#: Any JSON value: what a metadata value may be.
JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

#: One file's custom metadata (clientMetadata): key -> value.
MetadataDict: TypeAlias = dict[str, JsonValue]

#: A read-only view of metadata, for parameters.
MetadataView: TypeAlias = Mapping[str, JsonValue]


class Unset(enum.Enum):
    """Marks "not given", as distinct from an explicit ``null``.

    In a manifest an absent key means "not managed", while ``key: null`` means "remove the value".
    ``None`` cannot carry both meanings, so absent is spelled ``UNSET``.
    """

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset.UNSET
