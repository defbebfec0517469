"""Where things are in a manifest document, and how problems are worded.

:class:`Doc` is one YAML document with the positions messages point at (a value, or the key of a mapping
entry); :class:`Collected` gathers errors and warnings; :func:`report_validation_error` turns pydantic's
errors on the models of :mod:`reconciler.manifest.schema` into ``path:line:col: message`` diagnostics in our
own words (``unknown field 'lable'; did you mean 'label'?``, ``expected a boolean, got the string 'yes'``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from reconciler.errors import Diagnostic, ManifestParseError, SourceLocation
from reconciler.schema import TYPE_ALIASES
from reconciler.values import describe_value, yaml11_bool_hint

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

    from reconciler.manifest.yamlio import YamlDocument, YamlPath
    from reconciler.types import JsonValue

__all__ = [
    "Collected",
    "Doc",
    "bare_message",
    "quote_list",
    "report_validation_error",
    "suggest",
    "where",
]


@dataclass(frozen=True)
class Doc:
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
class Collected:
    """Every error and warning of one load."""

    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)

    def error(self, location: SourceLocation, message: str) -> None:
        self.errors.append(Diagnostic(location, message))

    def warn(self, location: SourceLocation, message: str) -> None:
        self.warnings.append(Diagnostic(location, message, "warning"))


def suggest(word: str, choices: Sequence[str]) -> str | None:
    """The choice ``word`` is most likely a typo of, if any."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def quote_list(items: Sequence[str]) -> str:
    return ", ".join(items)


def where(first: SourceLocation, here: SourceLocation) -> str:
    """How a message names an earlier place in the same file: ``line 12`` (``line 5, column 47`` if needed)."""
    if first.line == here.line:
        return f"line {first.line}, column {first.column}"
    return f"line {first.line}"


def bare_message(exc: ManifestParseError) -> str:
    """A parse error's message without its location prefix (the diagnostic carries the location)."""
    text = str(exc)
    prefix = f"{exc.location}: " if exc.location else ""
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text


# --------------------------------------------------------------------------------------------- pydantic


def report_validation_error(doc: Doc, model: type[BaseModel], exc: ValidationError, out: Collected) -> None:
    """Every error of one document's validation against ``model``, located and worded."""
    for detail in exc.errors(include_url=False):
        _report(doc, model, detail, out)


def _report(doc: Doc, model: type[BaseModel], detail: ErrorDetails, out: Collected) -> None:
    kind = detail["type"]
    path = _data_path(doc.data, tuple(detail["loc"]))
    value = detail.get("input")
    ctx: Mapping[str, Any] = detail.get("ctx") or {}
    field_name = next((p for p in reversed(path) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        allowed = _allowed_fields(model, path[:-1])
        hint = suggest(field_name, allowed)
        if hint:
            message = f"unknown field {field_name!r}; did you mean {hint!r}?"
        elif allowed:
            message = f"unknown field {field_name!r} (allowed fields: {quote_list(allowed)})"
        else:
            message = f"unknown field {field_name!r}"
        out.error(doc.key_at(path), message)
        return
    if kind == "missing":
        out.error(doc.at(path[:-1]), f"missing required field {field_name!r}")
        return
    location = doc.at(path)
    if kind in ("bool_type", "bool_parsing"):
        message = f"expected a boolean, got {describe_value(value)}{yaml11_bool_hint(value)}"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"expected an integer, got {describe_value(value)}"
    elif kind in ("float_type", "float_parsing", "finite_number"):
        message = f"expected a number, got {describe_value(value)}"
    elif kind == "string_type":
        hint = " (quote it to make it text)" if isinstance(value, int | float) else ""
        message = f"expected a string, got {describe_value(value)}{hint}"
    elif kind in ("literal_error", "enum"):
        message = _choice_message(path, field_name, value, str(ctx.get("expected", "")))
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        if len(path) == 2 and path[0] == "keys":
            message = (
                f"expected a type name (e.g. varchar) or a mapping with a type, got {describe_value(value)}"
            )
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
    out.error(location, message)


def _choice_message(path: YamlPath, field_name: str, value: object, expected: str) -> str:
    choices = re.findall(r"'([^']*)'", expected)
    is_type = len(path) >= 2 and path[0] == "keys" and (len(path) == 2 or path[-1] == "type")
    if is_type:
        choices = [c for c in choices if c not in TYPE_ALIASES]
    hint = suggest(value, choices) if isinstance(value, str) else None
    extra = f"; did you mean {hint!r}?" if hint else ""
    shown = repr(value) if isinstance(value, str) else describe_value(value)
    if is_type:
        return f"unknown type {shown} (expected one of {quote_list(choices)}){extra}"
    return f"invalid value {shown} for {field_name!r} (expected one of {quote_list(choices)}){extra}"


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
