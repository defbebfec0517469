"""The Markdown plan (PR comments): layout, grouping, escaping, the size limit and determinism."""

from __future__ import annotations

import random
import re
import time

from reconciler.plan.model import Plan
from reconciler.render.markdown import DEFAULT_MAX_CHARS, render_plan_markdown
from reconciler.render.text import render_plan_text
from tests.helpers.plans import (
    add,
    big_plan,
    demo_schema_changes,
    file_change,
    plan_of,
    remove,
    update,
    warning,
)

CUT = re.compile(r"^> … .* not shown: this comment is limited to [\d,]+ characters\. ", re.MULTILINE)


def demo_plan() -> Plan:
    return plan_of(
        file_change(
            "traffic/cams-2024",
            "cam01.mp4",
            update("capture.weather", "sunny", "rain"),
            add("capture.site", "london"),
        ),
        file_change("traffic/cams-2024", "cam07.mp4", remove("stale.key", 3), strategy="overwrite", n=7),
        schema=demo_schema_changes(),
        unchanged=40,
        warnings=(warning("key 'x' is not declared"),),
        destructive_reasons=("removes values from 80% of the selected files",),
    )


def test_layout_of_a_small_plan():
    md = render_plan_markdown(demo_plan())
    assert md == (
        "### reconciler plan: 3 schema changes, 2 files to update ⚠️ destructive\n"
        "\n"
        "> [!CAUTION]\n"
        "> **Destructive changes.** `reconciler apply` refuses this plan without `--allow-destructive`:\n"
        "> - schema key `legacy.note`: soft delete (restorable)\n"
        "> - removes values from 80% of the selected files\n"
        "\n"
        "| Schema keys: add | change | delete | Files: update | merge | overwrite | unchanged |\n"
        "|--:|--:|--:|--:|--:|--:|--:|\n"
        "| 1 | 1 | 1 | 2 | 1 | 1 | 40 |\n"
        "\n"
        "<sub>Provider `sqlite:/data/live.db` · made `2024-05-01T10:00:00Z` by reconciler `0.1.0`</sub>\n"
        "\n"
        "**Warnings**\n"
        "\n"
        "- `schema.yaml:4:3`: key 'x' is not declared\n"
        "\n"
        "#### Key changes (whole plan)\n"
        "\n"
        "| Key | Files: add | change | remove |\n"
        "|---|--:|--:|--:|\n"
        "| `capture.site` | 1 | 0 | 0 |\n"
        "| `capture.weather` | 0 | 1 | 0 |\n"
        "| `stale.key` | 0 | 0 | 1 |\n"
        "\n"
        "#### Schema changes\n"
        "\n"
        "| | Key | Change | Why | |\n"
        "|---|---|---|---|---|\n"
        "| `+` | `capture.time` | `datetime` | new key |  |\n"
        "| `~` | `capture.weather` | `enum: + fog` | adds enum values fog |  |\n"
        "| `-` | `legacy.note` | `soft delete` | soft delete (restorable) | ⚠️ destructive |\n"
        "\n"
        "#### Files\n"
        "\n"
        "<details><summary><code>traffic/cams-2024</code>: 2 files to update (1 merge, 1 overwrite)</summary>\n"
        "\n"
        "```diff\n"
        "! cam01.mp4  (merge)\n"
        '!   capture.weather  "sunny" -> "rain"\n'
        '+   capture.site     "london"\n'
        "\n"
        "! cam07.mp4  (overwrite)\n"
        "-   stale.key     3\n"
        "```\n"
        "</details>\n"
        "\n"
    )


def test_destructive_changes_come_before_the_summary_and_the_details():
    md = render_plan_markdown(demo_plan())
    assert md.index("[!CAUTION]") < md.index("| Schema keys: add") < md.index("#### Schema changes")


def test_no_changes():
    md = render_plan_markdown(plan_of(unchanged=5))
    assert md.startswith("### reconciler plan: no changes\n\n| Schema keys: add |")
    assert "| 0 | 0 | 0 | 0 | 0 | 0 | 5 |" in md
    assert "<details>" not in md
    assert "[!CAUTION]" not in md


def test_identical_changes_are_grouped_with_a_few_names():
    files = [
        file_change("data", f"f{i:02d}.jpg", add("ml.split", "train"), update("n", i, i + 1), n=i)
        for i in range(12)
    ]
    md = render_plan_markdown(plan_of(*files))
    assert (
        '- `+` set `ml.split` = `"train"` on **12 files** (merge): `f00.jpg`, `f01.jpg`, `f02.jpg`, … and 9 more\n'
        in md
    )
    assert "<sub>1 identical change(s) shown once for 12 file changes.</sub>" in md
    # The grouped change is not repeated per file (once in the per-key totals, once grouped); the rest is.
    assert "| `ml.split` | 12 | 0 | 0 |\n| `n` | 0 | 12 | 0 |\n" in md
    assert md.count("ml.split") == 2
    assert "!   n             0 -> 1\n" in md


def test_long_values_are_shortened():
    emb_before = [0.1] * 512
    emb_after = [0.2] * 512
    md = render_plan_markdown(
        plan_of(file_change("d", "a.wav", update("clip", emb_before, emb_after), add("caption", "x" * 200)))
    )
    assert "[0.1, 0.1, 0.1, … 512 numbers] -> [0.2, 0.2, 0.2, … 512 numbers]" in md
    assert '"' + "x" * 77 + '…" (200 chars)' in md
    assert "x" * 78 not in md


def test_names_and_values_are_escaped_for_their_context():
    nasty = "a|b <script>alert(1)</script> `tick` @everyone $x$ *bold*"
    plan = plan_of(
        file_change(nasty, "n|a<m>e`.jpg", add("k", "v|<b>`x`"), n=1),
        schema=demo_schema_changes()[:1],
        warnings=(warning("bad <tag> | *x*"),),
    )
    md = render_plan_markdown(plan)
    # The folder name inside <summary> is HTML-escaped.
    assert (
        "<summary><code>a|b &lt;script&gt;alert(1)&lt;/script&gt; `tick` @everyone $x$ *bold*</code>: 1 file"
        in md
    )
    assert "<script>" not in md
    # A warning's text is escaped as Markdown prose.
    assert "- `schema.yaml:4:3`: bad &lt;tag&gt; \\| \\*x\\*\n" in md
    # The code block holds names and values literally (a fenced block renders nothing inside it).
    assert '! n|a<m>e`.jpg  (merge)\n+   k             "v|<b>`x`"\n' in md


def test_backticks_in_names_use_longer_code_spans_and_fences():
    md = render_plan_markdown(
        plan_of(
            *[file_change("d", f"x{i}", add("k", "```"), n=i) for i in range(10)],
            file_change("d", "y", add("other", "````"), n=99),
        )
    )
    assert '- `+` set `k` = ````"```"```` on **10 files**' in md
    assert '\n`````diff\n! y  (merge)\n+   other         "````"\n`````\n' in md


def test_table_cells_escape_pipes():
    from reconciler.plan.model import SchemaAction, SchemaChange
    from reconciler.schema import FieldSpec, KeyType

    change = SchemaChange("a|b", SchemaAction.CREATE, None, FieldSpec(KeyType.TEXT), False, "new | key")
    md = render_plan_markdown(plan_of(schema=(change,)))
    assert "| `+` | `a\\|b` | `text` | new \\| key |  |\n" in md


def test_deterministic_whatever_the_file_order():
    plan = big_plan(300, folders=3)
    shuffled = list(plan.files)
    random.Random(7).shuffle(shuffled)
    from dataclasses import replace

    other = replace(plan, files=tuple(shuffled))
    assert render_plan_markdown(plan) == render_plan_markdown(other)
    assert render_plan_markdown(plan) == render_plan_markdown(plan)


def test_cut_at_a_section_boundary_with_a_visible_note():
    plan = big_plan(400, folders=4)
    md = render_plan_markdown(plan, max_chars=5000)
    assert len(md) <= 5000
    assert CUT.search(md)
    assert md.count("<details>") == md.count("</details>")
    assert md.count("```diff") * 2 == len(re.findall(r"^```", md, re.MULTILINE))
    # The note counts exactly what it left out.
    shown = md.count("\n! img-")
    in_folder = re.search(r"… ([\d,]+) more file\(s\) of this folder not shown", md)
    assert in_folder is not None
    folders_shown = md.count("<details>")
    assert f"> … {4 - folders_shown} more folders, " in md
    hidden = int(in_folder.group(1)) + (4 - folders_shown) * 100
    assert f", {hidden:,} more files not shown" in md
    assert shown + hidden == 400
    assert md.endswith(
        "The full plan is in the plan artifact; render it with `reconciler show plan.json` "
        "(or `--format json` for every change).\n"
    )


def test_a_cut_schema_table_leaves_every_folder_out():
    from reconciler.plan.model import SchemaAction, SchemaChange
    from reconciler.schema import FieldSpec, KeyType

    changes = tuple(
        SchemaChange(f"key.{i:04d}", SchemaAction.CREATE, None, FieldSpec(KeyType.TEXT), False, "new key")
        for i in range(500)
    )
    plan = plan_of(file_change("d", "a.jpg", add("k", 1)), schema=changes)
    md = render_plan_markdown(plan, max_chars=4000)
    assert len(md) <= 4000
    rows = md.count("| `+` | `key.")
    assert f"> … {500 - rows} more schema changes, 1 more folder, 1 more file not shown" in md
    assert "<details>" not in md


def test_a_100000_file_plan_renders_within_the_limit_quickly():
    plan = big_plan(100_000)
    started = time.perf_counter()
    md = render_plan_markdown(plan)
    text = render_plan_text(plan)
    elapsed = time.perf_counter() - started
    assert len(md) <= DEFAULT_MAX_CHARS == 65_000
    assert CUT.search(md)
    assert "files not shown" in md
    assert text.endswith("files 100,000 to update (85,714 merge, 14,286 overwrite), 0 unchanged.\n")
    # A sanity bound only (the real figure: bench/render_scale.py); it renders in a few seconds.
    assert elapsed < 120


def test_per_key_totals_cover_the_whole_plan_even_when_the_details_are_cut():
    files = [file_change("d", f"f{i:04d}.jpg", add("k.a", i), update("k.b", 0, 1), n=i) for i in range(3000)]
    files += [file_change("e", "x.jpg", remove("k.b", 5), n=9)]
    md = render_plan_markdown(plan_of(*files), max_chars=5_000)
    assert len(md) <= 5_000
    assert "| `k.a` | 3,000 | 0 | 0 |\n| `k.b` | 0 | 3,000 | 1 |\n" in md
    assert md.index("#### Key changes (whole plan)") < md.index("<details>")
    assert "not shown: this comment is limited to 5,000 characters" in md


def test_per_key_totals_list_at_most_twenty_keys():
    md = render_plan_markdown(plan_of(file_change("d", "a.jpg", *[add(f"k{i:02d}", i) for i in range(25)])))
    assert "| `k19` | 1 | 0 | 0 |\n| … and 5 more keys | | | |\n" in md
    assert "| `k20` |" not in md
