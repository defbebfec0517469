"""The apply journal: what the writer puts on disk, and the reader's tolerance of torn and corrupt files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from reconciler.apply import FileResult, FileStatus
from reconciler.errors import JournalError
from reconciler.journal import EntryStatus, JournalWriter, read_journal, safe_identity
from reconciler.plan.model import FileChange, KeyAction, KeyChange, Plan, Strategy
from reconciler.providers.base import ProviderIdentity

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def change(uuid: str, name: str) -> FileChange:
    return FileChange(
        uuid, "f", name, Strategy.MERGE, "m.yaml", "sha256:x", (KeyChange("k", KeyAction.ADD, None, 1),)
    )


def make_plan(provider: ProviderIdentity | None = None) -> Plan:
    return Plan(
        tool_version="0",
        created_at="2024-05-01T12:00:00Z",
        provider=provider or ProviderIdentity("sqlite", "/tmp/live.db"),
        manifests_digest="sha256:d",
        schema_fingerprint="sha256:s",
        schema_changes=(),
        files=(change("u1", "a.jpg"), change("u2", "b.jpg")),
        unchanged=0,
    )


def written(w: JournalWriter) -> Path:
    assert w.path is not None, "nothing was journaled"
    return w.path


def write_journal(tmp_path: Path, *, results: bool = True) -> Path:
    plan = make_plan()
    w = JournalWriter(tmp_path / "j", plan, now=NOW)
    w.before_batch([(plan.files[0], {"x": 1}, {"x": 1, "k": 1}), (plan.files[1], {}, {"k": 1})])
    if results:
        w.after_batch(
            [
                FileResult(plan.files[0], FileStatus.WRITTEN),
                FileResult(plan.files[1], FileStatus.FAILED, "boom"),
            ]
        )
    w.close()
    return written(w)


def test_writer_lines_and_reader_round_trip(tmp_path):
    path = write_journal(tmp_path)
    assert path.name.startswith("20240501T120000Z-") and path.suffix == ".jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["record"] for r in lines] == ["header", "file", "file", "result", "result"]
    assert lines[0]["provider"] == {"type": "sqlite", "path": "/tmp/live.db"}
    assert lines[0]["kind"] == "apply" and lines[0]["format_version"] == "1"
    assert lines[1] == {
        "record": "file",
        "uuid": "u1",
        "folder": "f",
        "name": "a.jpg",
        "before": {"x": 1},
        "after": {"x": 1, "k": 1},
        "status": "pending",
    }
    # Each line: sorted keys, no spaces, UTF-8 kept.
    assert path.read_text().splitlines()[1] == (
        '{"after":{"k":1,"x":1},"before":{"x":1},"folder":"f","name":"a.jpg","record":"file",'
        '"status":"pending","uuid":"u1"}'
    )
    j = read_journal(path)
    assert not j.torn
    assert j.header.provider == ProviderIdentity("sqlite", "/tmp/live.db")
    assert [(e.uuid, e.status, e.reason, e.line) for e in j.entries] == [
        ("u1", EntryStatus.WRITTEN, "", 2),
        ("u2", EntryStatus.FAILED, "boom", 3),
    ]
    assert j.entries[0].before == {"x": 1} and j.entries[0].after == {"x": 1, "k": 1}


def test_two_journals_in_one_second_get_two_files(tmp_path):
    plan = make_plan()
    a = JournalWriter(tmp_path, plan, now=NOW)
    b = JournalWriter(tmp_path, plan, now=NOW)
    for w in (a, b):
        w.before_batch([(plan.files[0], {}, {"k": 1})])
        w.close()
    assert a.path is not None and b.path is not None
    assert a.path != b.path and b.path.name == a.path.name.replace(".jsonl", "-2.jsonl")
    assert len(read_journal(b.path).entries) == 1


def test_no_journal_file_until_something_is_sent(tmp_path):
    w = JournalWriter(tmp_path / "j", make_plan(), now=NOW)
    w.close()
    assert w.path is None and not (tmp_path / "j").exists()


def test_pending_entries_without_results(tmp_path):
    j = read_journal(write_journal(tmp_path, results=False))
    assert [e.status for e in j.entries] == [EntryStatus.PENDING, EntryStatus.PENDING]


def test_last_line_complete_but_for_its_newline_counts(tmp_path):
    path = write_journal(tmp_path)
    path.write_bytes(path.read_bytes()[:-1])
    j = read_journal(path)
    assert not j.torn and j.entries[1].status is EntryStatus.FAILED


@pytest.mark.parametrize("cut", [2, 10, 40])
def test_torn_last_line_is_left_out(tmp_path, cut):
    path = write_journal(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])  # a kill in the middle of the last line
    j = read_journal(path)
    assert j.torn
    assert [(e.uuid, e.status) for e in j.entries] == [
        ("u1", EntryStatus.WRITTEN),
        ("u2", EntryStatus.PENDING),
    ]


def test_torn_multibyte_character_at_the_end(tmp_path):
    plan = make_plan()
    w = JournalWriter(tmp_path, plan, now=NOW)
    w.before_batch([(plan.files[0], {}, {"k": "ünïcødé"})])
    w.close()
    path = written(w)
    data = path.read_bytes()
    cut = data.index("ï".encode()) + 1
    path.write_bytes(data[:cut])
    j = read_journal(path)
    assert j.torn and j.entries == ()


def test_killed_before_the_header_was_complete(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"record": "header", "plan_')
    with pytest.raises(JournalError) as exc:
        read_journal(path)
    assert str(exc.value) == (
        f"{path}: not a usable journal (its first line is incomplete: the apply stopped before writing anything)"
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda ls: [*ls[:2], "{not json", *ls[2:]],
            "3: corrupt journal line (invalid JSON: Expecting property name enclosed in double quotes)",
        ),
        (lambda ls: [*ls[:2], "[1, 2]", *ls[2:]], "3: corrupt journal line (expected a JSON object)"),
        (lambda ls: [*ls[:1], "", *ls[1:]], "2: empty line in the journal"),
        (lambda ls: ls[1:], "1: not a reconciler journal (the first line is not a header)"),
        (lambda ls: [*ls, ls[0]], "6: a second header (two journals in one file?)"),
        (lambda ls: [*ls, '{"record": "note"}'], "6: unknown journal record 'note'"),
        (
            lambda ls: [*ls, '{"record": "result", "uuid": "zzz", "status": "written"}'],
            "6: result for file zzz that the journal does not list",
        ),
        (
            lambda ls: [*ls, '{"record": "result", "uuid": "u1", "status": "maybe"}'],
            "6: unknown result status 'maybe'",
        ),
        (
            lambda ls: [ls[0], ls[1].replace('"before":{"x":1}', '"before":3'), *ls[2:]],
            "2: corrupt journal line ('before' must be an object)",
        ),
        (
            lambda ls: [ls[0].replace('"format_version":"1"', '"format_version":"9"'), *ls[1:]],
            "1: journal format_version '9' is not one this reconciler reads ('1')",
        ),
    ],
)
def test_corruption_is_reported_with_path_and_line(tmp_path, mutate, message):
    path = write_journal(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(mutate(lines)) + "\n")
    with pytest.raises(JournalError) as exc:
        read_journal(path)
    assert str(exc.value) == f"{path}:{message}"


def test_a_complete_bad_line_in_the_middle_is_corruption_not_a_tear(tmp_path):
    path = write_journal(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], lines[3][:20], *lines[4:]]))  # no trailing newline either
    with pytest.raises(JournalError, match=r":4: corrupt journal line \(invalid JSON"):
        read_journal(path)


def test_unreadable_and_non_utf8(tmp_path):
    with pytest.raises(JournalError) as exc:
        read_journal(tmp_path / "missing.jsonl")
    assert (
        str(exc.value) == f"{tmp_path / 'missing.jsonl'}: cannot read the journal: No such file or directory"
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"record": "header"}\n\xff\xfe\n')
    with pytest.raises(JournalError) as exc:
        read_journal(bad)
    assert str(exc.value) == f"{bad}:2: not a journal (not UTF-8 text)"


def test_no_credentials_in_the_header(tmp_path):
    plan = make_plan(ProviderIdentity("encord", "https://user:s3cret@api.example.com/?token=abc"))
    w = JournalWriter(tmp_path, plan, now=NOW)
    w.before_batch([(plan.files[0], {}, {"k": 1})])
    w.close()
    text = written(w).read_text()
    assert "s3cret" not in text and "token" not in text and "user" not in text
    assert read_journal(written(w)).header.provider == ProviderIdentity("encord", "https://api.example.com/")
    assert safe_identity(ProviderIdentity("sqlite", "/a@b/live.db")) == ProviderIdentity(
        "sqlite", "/a@b/live.db"
    )


def test_the_journal_appears_with_its_header_complete(tmp_path):
    plan = make_plan()
    w = JournalWriter(tmp_path, plan, now=NOW)
    w.before_batch([(plan.files[0], {}, {"k": 1})])
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == [written(w).name]  # no temporary file left behind
    assert json.loads(written(w).read_text().splitlines()[0])["record"] == "header"


def test_without_hard_links_the_journal_is_created_exclusively(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.link", no_links)
    plan = make_plan()
    a = JournalWriter(tmp_path, plan, now=NOW)
    b = JournalWriter(tmp_path, plan, now=NOW)
    for w in (a, b):
        w.before_batch([(plan.files[0], {}, {"k": 1})])
        w.close()
    assert written(b).name == written(a).name.replace(".jsonl", "-2.jsonl")
    assert [len(read_journal(written(w)).entries) for w in (a, b)] == [1, 1]
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".jsonl", ".jsonl"]


def test_plan_id_covers_the_plans_content():
    from reconciler.journal import plan_id
    from tests.helpers.plans import file_change, plan_of, update

    a = plan_of(file_change("cams", "a.jpg", update("tag", "x", "one")))
    b = plan_of(file_change("cams", "a.jpg", update("tag", "x", "two")))
    c = plan_of(file_change("cams", "a.jpg", update("other", "x", "one")))
    d = plan_of(file_change("cams", "a.jpg", update("tag", "x", "one"), strategy="overwrite"))
    assert len({plan_id(a), plan_id(b), plan_id(c), plan_id(d)}) == 4
    again = plan_of(file_change("cams", "a.jpg", update("tag", "x", "one")))
    assert plan_id(again) == plan_id(a)


def _reference_plan_id(plan: Plan) -> str:
    """plan_id as the standard library's encoder computes it (what journals and their names already hold)."""
    import hashlib

    canonical = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
    h = hashlib.sha256()
    for part in (plan.provider.type, plan.provider.location, plan.manifests_digest, plan.schema_fingerprint):
        h.update(part.encode() + b"\0")
    for c in plan.schema_changes:
        after = c.after.to_json() if c.after else None
        h.update(f"{c.key}\0{c.action.value}\0{c.renamed_from or ''}\0{canonical(after)}\n".encode())
    files = [
        (
            f.uuid,
            f.live_fingerprint,
            f.strategy.value,
            [(k.key, k.action.value, k.before, k.after) for k in f.changes],
        )
        for f in plan.files
    ]
    h.update(canonical(files).encode())
    return h.hexdigest()[:12]


def test_plan_id_is_the_standard_librarys_for_random_values():
    import random
    from dataclasses import replace

    from reconciler.journal import plan_id
    from tests.unit.test_jsoncodec import _random_value

    rng = random.Random(1414)
    base = make_plan()
    for _ in range(2_000):
        files = tuple(
            FileChange(
                f"u{i}",
                "f",
                f"{i}.jpg",
                rng.choice((Strategy.MERGE, Strategy.OVERWRITE)),
                "m.yaml",
                "sha256:x",
                tuple(
                    KeyChange(
                        f"k{j}\u00e9", rng.choice(list(KeyAction)), _random_value(rng), _random_value(rng)
                    )
                    for j in range(rng.randint(0, 3))
                ),
            )
            for i in range(rng.randint(0, 3))
        )
        plan = replace(base, files=files)
        try:
            want: object = _reference_plan_id(plan)
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            want = type(exc)
        try:
            got: object = plan_id(plan)
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            got = type(exc)
        assert got == want, files
