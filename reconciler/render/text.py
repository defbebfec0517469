"""The human plan (Terraform-like): schema changes, then files per folder, then the summary line.

When at least ``group_min`` files of a folder get one identical key change, that change is shown once
(``set capture.site = "london" on 12,430 files``, with a few names) instead of under every file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

from reconciler.plan.model import FileChange, KeyAction, KeyChange, Plan, Strategy
from reconciler.render.values import describe_schema_change
from reconciler.values import format_value

if TYPE_CHECKING:
    from reconciler.apply import ApplyResult
    from reconciler.types import JsonValue

__all__ = ["AnsiStyler", "PlainStyler", "Styler", "render_apply_result", "render_plan_text", "summary_line"]

GROUP_MIN = 10
GROUP_EXAMPLES = 3


class Styler(Protocol):
    """Paints text by role (``add``, ``change``, ``remove``, ``warn``, ``bold``, ``dim``)."""

    def __call__(self, text: str, role: str) -> str: ...


class PlainStyler:
    def __call__(self, text: str, role: str) -> str:
        return text


class AnsiStyler:
    _CODES: ClassVar[dict[str, str]] = {
        "add": "32",
        "change": "33",
        "remove": "31",
        "warn": "1;31",
        "bold": "1",
        "dim": "2",
    }

    def __call__(self, text: str, role: str) -> str:
        code = self._CODES.get(role)
        return f"\x1b[{code}m{text}\x1b[0m" if code else text


_ROLE: dict[str, str] = {"+": "add", "~": "change", "-": "remove"}


def _sym(symbol: str, style: Styler) -> str:
    return style(symbol, _ROLE[symbol])


def _key_line(kc: KeyChange, width: int, style: Styler, indent: str = "      ") -> list[str]:
    sym = kc.action.symbol
    if kc.action is KeyAction.ADD:
        detail = format_value(kc.after)
    elif kc.action is KeyAction.REMOVE:
        detail = format_value(kc.before)
    else:
        detail = f"{format_value(kc.before)} -> {format_value(kc.after)}"
    lines = [f"{indent}{_sym(sym, style)} {kc.key:<{width}}  {detail}".rstrip()]
    if kc.field_changes and len(kc.field_changes) <= 10 and len(format_value(kc.before, shorten=False)) > 40:
        for fc in kc.field_changes:
            if fc.before is None:
                lines.append(f"{indent}    + {fc.path}  {format_value(fc.after)}")
            elif fc.after is None:
                lines.append(f"{indent}    - {fc.path}  {format_value(fc.before)}")
            else:
                lines.append(
                    f"{indent}    ~ {fc.path}  {format_value(fc.before)} -> {format_value(fc.after)}"
                )
    return lines


def _group_phrase(kc: KeyChange) -> str:
    if kc.action is KeyAction.ADD:
        return f"set {kc.key} = {format_value(kc.after)}"
    if kc.action is KeyAction.REMOVE:
        return f"remove {kc.key} (was {format_value(kc.before)})"
    return f"change {kc.key} from {format_value(kc.before)} to {format_value(kc.after)}"


def _value_key(value: JsonValue) -> object:
    """A hashable identity of a value for grouping (scalars as themselves, containers as JSON)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return (type(value).__name__, value)
    return format_value(value, shorten=False)


_Sig = tuple[Strategy, str, KeyAction, object, object]


def _sig(f: FileChange, kc: KeyChange) -> _Sig:
    return (f.strategy, kc.key, kc.action, _value_key(kc.before), _value_key(kc.after))


def _render_folder(heading: str, files: Sequence[FileChange], style: Styler, group_min: int) -> list[str]:
    lines = [style(f"{heading}:", "bold")]
    groups: dict[_Sig, list[FileChange]] = defaultdict(list)
    first: dict[_Sig, KeyChange] = {}
    sigs: list[list[_Sig]] = []  # per file, per change: computed once
    if len(files) >= group_min:
        for f in files:
            row = [_sig(f, kc) for kc in f.changes]
            sigs.append(row)
            for kc, sig in zip(f.changes, row, strict=True):
                groups[sig].append(f)
                first.setdefault(sig, kc)
    grouped = {sig for sig, fs in groups.items() if len(fs) >= group_min}
    for sig in sorted(grouped, key=lambda g: (g[0].value, g[1], g[2].value, repr(g[3]), repr(g[4]))):
        fs = groups[sig]
        kc = first[sig]
        names = ", ".join(f.name for f in fs[:GROUP_EXAMPLES])
        more = f", … and {len(fs) - GROUP_EXAMPLES:,} more" if len(fs) > GROUP_EXAMPLES else ""
        lines.append(
            f"  {_sym(kc.action.symbol, style)} {_group_phrase(kc)} on {len(fs):,} files ({sig[0].value}): {names}{more}"
        )
    width_f = max([20] + [len(f.name) for f in files])
    for i, f in enumerate(files):
        if grouped:
            rest = [kc for kc, sig in zip(f.changes, sigs[i], strict=True) if sig not in grouped]
        else:
            rest = list(f.changes)
        if not rest:
            continue
        lines.append(f"  {_sym('~', style)} {f.name:<{width_f}}  {f.strategy.value}")
        width_k = max([16] + [len(kc.key) for kc in rest])
        for kc in rest:
            lines.extend(_key_line(kc, width_k, style))
    if grouped:
        n = sum(len(groups[s]) for s in grouped)
        lines.append(
            style(
                f"  ({len(grouped)} identical change(s) shown once for {n:,} file changes; "
                "`plan --format json` lists every file)",
                "dim",
            )
        )
    return lines


def _row_calls(plan: Plan) -> str:
    n = plan.data_row_writes
    return f"; {n:,} by the legacy per-row call" if n else ""


def summary_line(plan: Plan) -> str:
    s = plan.schema_counts()
    f = plan.file_counts()
    return (
        f"Plan: schema {s['create']} to add, {s['update']} to change, {s['delete']} to delete; "
        f"files {f['update']:,} to update ({f['merge']:,} merge, {f['overwrite']:,} overwrite{_row_calls(plan)}), "
        f"{f['unchanged']:,} unchanged."
    )


def render_plan_text(plan: Plan, *, style: Styler | None = None, group_min: int = GROUP_MIN) -> str:
    """The whole plan as text. Deterministic: sorted by key, folder and file name."""
    style = style or PlainStyler()
    out: list[str] = []
    if not plan.has_changes:
        out.append("No changes. Live state matches the manifests.")
        out.append("")
        out.append(summary_line(plan))
        return "\n".join(out) + "\n"
    if plan.schema_changes:
        out.append(style("Schema:", "bold"))
        width = max([20] + [len(c.key) for c in plan.schema_changes])
        for c in plan.schema_changes:
            tail = "   " + style("[destructive]", "warn") if c.destructive else ""
            out.append(
                f"  {_sym(c.action.symbol, style)} {c.key:<{width}}  {describe_schema_change(c)}{tail}"
            )
        out.append("")
    by_folder: dict[str, list[FileChange]] = defaultdict(list)
    for f in plan.files:
        by_folder[f.group].append(f)
    for folder in sorted(by_folder):
        out.extend(_render_folder(folder, by_folder[folder], style, group_min))
        out.append("")
    for reason in plan.destructive_reasons:
        out.append(style(f"Destructive: {reason}", "warn"))
    if plan.destructive_reasons:
        out.append("")
    out.append(summary_line(plan))
    return "\n".join(out) + "\n"


def render_apply_result(result: ApplyResult) -> str:
    """The closing report of an apply: counts, then every file that was not written, with its reason."""
    from reconciler.apply import FileStatus

    lines: list[str] = []
    # Not-attempted files (an interrupted or stopped apply) are counted, not listed: there may be millions.
    shown = (FileStatus.FAILED, FileStatus.STALE, FileStatus.CHANGED_AFTER_WRITE)
    for r in sorted(
        (r for r in result.files if r.status in shown), key=lambda r: (r.change.folder, r.change.name)
    ):
        lines.append(f"  {r.status.value}: {r.change.address}: {r.reason}")
    written = result.count(FileStatus.WRITTEN)
    parts = [f"{written:,} file(s) written"]
    for st in (
        FileStatus.UNCHANGED,
        FileStatus.STALE,
        FileStatus.FAILED,
        FileStatus.CHANGED_AFTER_WRITE,
        FileStatus.NOT_ATTEMPTED,
    ):
        n = result.count(st)
        if n:
            parts.append(f"{n:,} {st.value}")
    head = "Apply " + (
        "interrupted" if result.interrupted else "complete" if result.ok else "finished with errors"
    )
    schema = "schema written; " if result.schema_written else ""
    return "\n".join([*lines, f"{head}: {schema}{', '.join(parts)}."]) + "\n"
