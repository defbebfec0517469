"""The plan as Markdown for a pull-request comment: summary table, destructive changes first, details folded.

The output never exceeds ``max_chars`` (GitHub refuses comments over 65,536 characters): when the plan is too
big it stops at a section boundary (a schema row, a folder, a file) and says what it left out. Every name and
value is escaped for its context (table cell, inline code, HTML), so file names cannot break the layout,
mention people or inject HTML.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.plan.model import FileChange, KeyAction, KeyChange, Plan, SchemaChange
from reconciler.render.text import GROUP_EXAMPLES, GROUP_MIN
from reconciler.render.values import describe_schema_change
from reconciler.values import format_value

__all__ = ["DEFAULT_MAX_CHARS", "render_plan_markdown"]

#: GitHub's limit is 65,536; a little room is left for the hidden marker the CI action adds.
DEFAULT_MAX_CHARS = 65_000
_MIN_CHARS = 2_000
_MAX_LISTED = 20  # destructive changes and warnings listed in the head; the rest are counted
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_BACKTICKS = re.compile(r"`+")
_MD_PUNCT = re.compile(r"([\\`*_{}\[\]#|~$!])")

# ------------------------------------------------------------------------------------------ escaping


def _visible(text: str) -> str:
    """Control characters (newlines included) as escapes, so one name stays on one line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _code(text: str, *, table: bool = False) -> str:
    """An inline code span that holds ``text`` literally, whatever backticks it contains.

    Inside a code span Markdown, HTML, ``@mentions`` and ``$math$`` are inert; only ``|`` must still be
    escaped inside a table cell (GFM splits cells before it parses spans).
    """
    text = _visible(text)
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip(" ") else ""
    out = f"{fence}{pad}{text}{pad}{fence}"
    return out.replace("|", "\\|") if table else out


def _text(text: str) -> str:
    """Prose (a reason, a warning) as Markdown text: HTML characters as entities, Markdown syntax escaped."""
    text = html.escape(_visible(text), quote=False)
    return _MD_PUNCT.sub(r"\\\1", text)


def _html(text: str) -> str:
    """Text inside an HTML element (``<summary>``): entities for ``<``, ``>``, ``&`` and quotes."""
    return html.escape(_visible(text), quote=True)


def _fence(lines: Sequence[str]) -> str:
    """A fence longer than any backtick run in the block, so a value cannot close the block early."""
    longest = max((len(m) for line in lines for m in _BACKTICKS.findall(line)), default=0)
    return "`" * max(3, longest + 1)


# ------------------------------------------------------------------------------------------ pieces


def _schema_row(c: SchemaChange) -> str:
    flag = "⚠️ destructive" if c.destructive else ""
    reason = _text(c.reason)
    return (
        f"| {_code(c.action.symbol, table=True)} | {_code(c.key, table=True)} | "
        f"{_code(describe_schema_change(c), table=True)} | {reason} | {flag} |"
    )


def _sig(f: FileChange, kc: KeyChange) -> tuple[str, str, str, str, str]:
    return (
        f.strategy.value,
        kc.key,
        kc.action.value,
        format_value(kc.before, shorten=False),
        format_value(kc.after, shorten=False),
    )


def _group_phrase(kc: KeyChange) -> str:
    if kc.action is KeyAction.ADD:
        return f"set {_code(kc.key)} = {_code(format_value(kc.after))}"
    if kc.action is KeyAction.REMOVE:
        return f"remove {_code(kc.key)} (was {_code(format_value(kc.before))})"
    return f"change {_code(kc.key)} from {_code(format_value(kc.before))} to {_code(format_value(kc.after))}"


# Lines of a ```diff block: GitHub colours a leading "+" green, "-" red and "!" orange.
_DIFF_SIGN = {KeyAction.ADD: "+", KeyAction.REMOVE: "-", KeyAction.UPDATE: "!"}


def _file_lines(f: FileChange, rest: Sequence[KeyChange]) -> list[str]:
    lines = [f"! {_visible(f.name)}  ({f.strategy.value})"]
    width = max([12] + [len(kc.key) for kc in rest])
    for kc in rest:
        if kc.action is KeyAction.ADD:
            detail = format_value(kc.after)
        elif kc.action is KeyAction.REMOVE:
            detail = format_value(kc.before)
        else:
            detail = f"{format_value(kc.before)} -> {format_value(kc.after)}"
        lines.append(f"{_DIFF_SIGN[kc.action]}   {_visible(kc.key):<{width}}  {detail}".rstrip())
        if (
            kc.field_changes
            and len(kc.field_changes) <= 10
            and len(format_value(kc.before, shorten=False)) > 40
        ):
            for fc in kc.field_changes:
                if fc.before is None:
                    lines.append(f"+       {fc.path}  {format_value(fc.after)}")
                elif fc.after is None:
                    lines.append(f"-       {fc.path}  {format_value(fc.before)}")
                else:
                    lines.append(f"!       {fc.path}  {format_value(fc.before)} -> {format_value(fc.after)}")
    return lines


@dataclass
class _Folder:
    """One folder's rendering, built lazily: group bullets first, then one block per file."""

    key: tuple[str, str]  # ("Dataset", title) or ("Folder", path)
    files: list[FileChange]
    groups: list[str]
    grouped_sigs: frozenset[tuple[str, str, str, str, str]]
    grouped_changes: int

    def summary(self) -> str:
        merge = sum(1 for f in self.files if f.strategy.value == "merge")
        n = len(self.files)
        return (
            f"<details><summary>{'Dataset ' if self.key[0] == 'Dataset' else ''}<code>{_html(self.key[1])}</code>: "
            f"{n:,} file{'s' if n != 1 else ''} "
            f"to update ({merge:,} merge, {n - merge:,} overwrite)</summary>"
        )

    def file_blocks(self) -> list[list[str]]:
        blocks = []
        for f in self.files:
            rest = [kc for kc in f.changes if _sig(f, kc) not in self.grouped_sigs]
            if rest:
                blocks.append(_file_lines(f, rest))
        return blocks


def _folder(name: tuple[str, str], files: list[FileChange], group_min: int) -> _Folder:
    files = sorted(files, key=lambda f: (f.name, f.uuid))
    groups: dict[tuple[str, str, str, str, str], list[FileChange]] = defaultdict(list)
    if len(files) >= group_min:
        for f in files:
            for kc in f.changes:
                groups[_sig(f, kc)].append(f)
    grouped = {sig for sig, fs in groups.items() if len(fs) >= group_min}
    bullets = []
    for sig in sorted(grouped):
        fs = groups[sig]
        kc = next(k for k in fs[0].changes if _sig(fs[0], k) == sig)
        names = ", ".join(_code(f.name) for f in fs[:GROUP_EXAMPLES])
        more = f", … and {len(fs) - GROUP_EXAMPLES:,} more" if len(fs) > GROUP_EXAMPLES else ""
        bullets.append(
            f"- {_code(kc.action.symbol)} {_group_phrase(kc)} on **{len(fs):,} files** ({sig[0]}): {names}{more}"
        )
    n_grouped = sum(len(groups[s]) for s in grouped)
    return _Folder(name, files, bullets, frozenset(grouped), n_grouped)


# ------------------------------------------------------------------------------------------ the document


class _Budget:
    """Collects parts while they fit in ``limit`` characters (joined by newlines)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.used = 0

    def fits(self, text: str, reserve: int = 0) -> bool:
        return self.used + len(text) + 1 + reserve <= self.limit

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.used += len(text) + 1

    def text(self) -> str:
        return "\n".join(self.parts) + "\n"


def _title(plan: Plan) -> str:
    if not plan.has_changes:
        return "### reconciler plan: no changes"
    parts = []
    if plan.schema_changes:
        n = len(plan.schema_changes)
        parts.append(f"{n:,} schema change{'s' if n != 1 else ''}")
    if plan.files:
        n = len(plan.files)
        parts.append(f"{n:,} file{'s' if n != 1 else ''} to update")
    warn = " ⚠️ destructive" if plan.is_destructive else ""
    return f"### reconciler plan: {', '.join(parts)}{warn}"


def _summary_table(plan: Plan) -> list[str]:
    s = plan.schema_counts()
    f = plan.file_counts()
    return [
        "| Schema keys: add | change | delete | Files: update | merge | overwrite | unchanged |",
        "|--:|--:|--:|--:|--:|--:|--:|",
        f"| {s['create']:,} | {s['update']:,} | {s['delete']:,} | {f['update']:,} | {f['merge']:,} | "
        f"{f['overwrite']:,} | {f['unchanged']:,} |",
    ]


def _key_totals(plan: Plan) -> list[str]:
    """Per-key totals over the whole plan (every file, however much of the comment is cut): for each metadata
    key, on how many files it is added, changed and removed. Keys sorted; at most ``_MAX_LISTED`` rows."""
    totals: dict[str, dict[KeyAction, int]] = defaultdict(lambda: dict.fromkeys(KeyAction, 0))
    for f in plan.files:
        for kc in f.changes:
            totals[kc.key][kc.action] += 1
    if not totals:
        return []
    lines = [
        "#### Key changes (whole plan)",
        "",
        "| Key | Files: add | change | remove |",
        "|---|--:|--:|--:|",
    ]
    for key in sorted(totals)[:_MAX_LISTED]:
        t = totals[key]
        lines.append(
            f"| {_code(key, table=True)} | {t[KeyAction.ADD]:,} | {t[KeyAction.UPDATE]:,} | "
            f"{t[KeyAction.REMOVE]:,} |"
        )
    if len(totals) > _MAX_LISTED:
        lines.append(f"| … and {len(totals) - _MAX_LISTED:,} more keys | | | |")
    return [*lines, ""]


def _destructive(plan: Plan) -> list[str]:
    if not plan.is_destructive:
        return []
    lines = [
        "> [!CAUTION]",
        "> **Destructive changes.** `reconciler apply` refuses this plan without `--allow-destructive`:",
    ]
    items = [
        f"> - schema key {_code(c.key)}: {_text(c.reason or describe_schema_change(c))}"
        for c in plan.schema_changes
        if c.destructive
    ]
    items += [f"> - {_text(reason)}" for reason in plan.destructive_reasons]
    lines += items[:_MAX_LISTED]
    if len(items) > _MAX_LISTED:
        lines.append(f"> - … and {len(items) - _MAX_LISTED:,} more (see the schema changes below)")
    return lines


def render_plan_markdown(
    plan: Plan, *, max_chars: int = DEFAULT_MAX_CHARS, group_min: int = GROUP_MIN
) -> str:
    """The plan as a Markdown PR comment of at most ``max_chars`` characters. Deterministic.

    Order: title, destructive changes, summary table, warnings, per-key totals of the whole plan, schema
    changes, then one collapsed ``<details>`` section per folder (identical changes grouped, then each file's remaining key changes).
    """
    max_chars = max(max_chars, _MIN_CHARS)
    out = _Budget(max_chars)
    head = [_title(plan), ""]
    destructive = _destructive(plan)
    if destructive:
        head += [*destructive, ""]
    head += [*_summary_table(plan), ""]
    head.append(
        f"<sub>Provider {_code(str(plan.provider))} · made {_code(plan.created_at)} by reconciler "
        f"{_code(plan.tool_version)}</sub>"
    )
    head.append("")
    if plan.warnings:
        head.append("**Warnings**")
        head.append("")
        for w in plan.warnings[:_MAX_LISTED]:
            head.append(f"- {_code(str(w.location))}: {_text(w.message)}")
        if len(plan.warnings) > _MAX_LISTED:
            head.append(f"- … and {len(plan.warnings) - _MAX_LISTED:,} more")
        head.append("")
    head += _key_totals(plan)

    # The note that replaces whatever does not fit; its size is reserved before anything optional is added.
    note_reserve = 400
    head_text = "\n".join(head)
    if len(head_text) + note_reserve > max_chars:  # pathological: thousands of warnings or reasons
        head_text = head_text[: max_chars - note_reserve].rsplit("\n", 1)[0]
    out.add(head_text)

    left_schema = 0
    if plan.schema_changes:
        rows = ["#### Schema changes", "", "| | Key | Change | Why | |", "|---|---|---|---|---|"]
        table = rows[:]
        for i, c in enumerate(plan.schema_changes):
            row = _schema_row(c)
            if not out.fits("\n".join([*table, row]), note_reserve):
                left_schema = len(plan.schema_changes) - i
                break
            table.append(row)
        if len(table) > len(rows):
            out.add("\n".join([*table, ""]))
        else:
            left_schema = len(plan.schema_changes)

    by_folder: dict[tuple[str, str], list[FileChange]] = defaultdict(list)
    for f in plan.files:
        by_folder[("Dataset" if f.dataset is not None else "Folder", f.folder)].append(f)
    folders = sorted(by_folder)
    left_folders = 0
    left_files = 0
    if folders and not left_schema:
        out.add("#### Files\n")
    for idx, name in enumerate(folders):
        if left_schema or left_folders:
            left_folders += 1
            left_files += len(by_folder[name])
            continue
        fo = _folder(name, by_folder[name], group_min)
        opening = [fo.summary(), ""]
        if fo.groups:
            opening += [*fo.groups, ""]
        closing = "</details>\n"
        if not out.fits("\n".join(opening) + closing, note_reserve):
            left_folders += 1
            left_files += len(fo.files)
            continue
        blocks = fo.file_blocks()
        fence = _fence([line for block in blocks for line in block])
        tail = [
            f"\n<sub>{len(fo.grouped_sigs):,} identical change(s) shown once for "
            f"{fo.grouped_changes:,} file changes.</sub>"
            if fo.grouped_sigs
            else "",
            closing,
        ]
        body = ["\n".join(opening)]
        # Room for the fences, the tail, and a possible "more files" line.
        used = len(body[0]) + len(fence) * 2 + len("diff") + sum(len(t) + 1 for t in tail) + 120
        shown: list[str] = []
        for block in blocks:
            text = "\n".join(block) + "\n"
            if not out.fits(text, note_reserve + used):
                break
            shown.append(text)
            used += len(text) + 1
        hidden_files = len(blocks) - len(shown)
        if shown:
            body.append(f"{fence}diff\n" + "\n".join(shown).rstrip("\n") + f"\n{fence}")
        if hidden_files:
            body.append(f"\n<sub>… {hidden_files:,} more file(s) of this folder not shown.</sub>")
        body.extend(t for t in tail if t)
        out.add("\n".join(body))
        if hidden_files:
            # The folder did not fit: the rest of it and every later folder are left out.
            left_files += hidden_files
            left_folders += len(folders) - idx - 1
            left_files += sum(len(by_folder[n]) for n in folders[idx + 1 :])
            break

    if left_schema or left_folders or left_files:
        parts = []
        if left_schema:
            parts.append(f"{left_schema:,} more schema change{'s' if left_schema != 1 else ''}")
        if left_folders:
            parts.append(f"{left_folders:,} more folder{'s' if left_folders != 1 else ''}")
        if left_files:
            parts.append(f"{left_files:,} more file{'s' if left_files != 1 else ''}")
        out.add(
            f"> [!NOTE]\n> … {', '.join(parts)} not shown: this comment is limited to {max_chars:,} characters. "
            "The full plan is in the plan artifact; render it with `reconciler show plan.json` "
            "(or `--format json` for every change)."
        )
    return out.text()
