"""How errors and warnings are shown: paths relative to the current directory, GitHub workflow annotations,
and the JSON document of ``validate --format json``.

The loader and the planner locate problems relative to the manifest directory (``files/x.yaml:4:1``); this is
the one place that turns such a location into what a terminal, an editor or a CI log can open
(``manifests/files/x.yaml:4:1`` when run from the repository root), as ruff and mypy print them. Nothing here
prints: :mod:`reconciler.cli` echoes what these functions return.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from reconciler.errors import Diagnostic, SourceLocation

__all__ = [
    "display_location",
    "display_path",
    "github_annotation",
    "validate_document",
]


def display_path(path: str, base: Path | None = None, cwd: Path | None = None) -> str:
    """``path`` as the user can open it from ``cwd``.

    A relative ``path`` is relative to ``base`` (the manifest directory) when one is given, else to ``cwd``.
    The result is relative to ``cwd`` when the file is inside it, absolute otherwise. ``.`` (the manifest
    directory itself) is shown as that directory with a trailing ``/``.
    """
    here = Path(os.path.abspath(cwd or Path.cwd()))
    p = Path(path)
    if not p.is_absolute():
        p = (base or Path()) / p
    full = Path(os.path.abspath(here / p))
    try:
        shown = full.relative_to(here).as_posix()
    except ValueError:
        shown = str(full)
    if path in (".", "./") or path.endswith("/"):
        shown = "./" if shown == "." else shown.rstrip("/") + "/"
    return shown


def display_location(
    loc: SourceLocation, base: Path | None = None, cwd: Path | None = None
) -> SourceLocation:
    return SourceLocation(display_path(loc.path, base, cwd), loc.line, loc.column)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(
    message: str, *, severity: str = "error", location: SourceLocation | None = None
) -> str:
    """One GitHub Actions workflow command (``::error file=F,line=L,col=C::message``), escaped as GitHub
    requires (``%``, CR and LF everywhere; ``:`` and ``,`` too in property values). ``location`` is already
    a display location."""
    command = "warning" if severity == "warning" else "error"
    props: list[str] = []
    if location is not None:
        props.append(f"file={_escape_property(location.path)}")
        if location.line is not None:
            props.append(f"line={location.line}")
            if location.column is not None:
                props.append(f"col={location.column}")
    head = f"::{command} {','.join(props)}" if props else f"::{command}"
    return f"{head}::{_escape_data(message)}"


def _diag_json(d: Diagnostic, base: Path | None, cwd: Path | None) -> dict[str, Any]:
    loc = display_location(d.location, base, cwd)
    return {
        "severity": d.severity,
        "file": loc.path,
        "line": loc.line,
        "column": loc.column,
        "message": d.message,
    }


def validate_document(
    *,
    errors: Sequence[Diagnostic],
    warnings: Iterable[Diagnostic],
    digest: str | None,
    counts: dict[str, int] | None,
    base: Path | None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """The result of ``validate --format json`` (the fields of ``terraform validate -json``, plus the
    manifests' digest, the value a saved plan records as ``manifests_digest``)."""
    warns = list(warnings)
    return {
        "format_version": "1",
        "valid": not errors,
        "error_count": len(errors),
        "warning_count": len(warns),
        "manifests_digest": digest,
        "documents": counts,
        "diagnostics": [_diag_json(d, base, cwd) for d in [*errors, *warns]],
    }
