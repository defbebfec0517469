"""Large deterministic live states and the manifests that change them, for fault and crash tests.

Every file carries *foreign* keys (``foreign.*``, never owned by a manifest) and the manifests own
``team.*``: after any apply, converged or not, every foreign key must still be there unchanged.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.model import DesiredState, LiveFolder, LiveItem
from reconciler.snapshot import Snapshot, write_snapshot
from reconciler.types import JsonValue

SCHEMA: dict[str, dict[str, JsonValue]] = {
    "team.score": {"ty": "number"},
    "team.label": {"ty": "varchar"},
    "team.split": {"ty": "enum", "values": ["test", "train", "val"]},
}


def uuid_of(kind: int, n: int) -> str:
    """A deterministic UUID (version 4 layout): ``kind`` 1 for folders, 2 for items."""
    return f"00000000-0000-4000-8{kind:03d}-{n:012d}"


@dataclass(frozen=True)
class Scenario:
    """A live state of ``n_files`` files over ``n_folders`` folders and the desired ``team.*`` values."""

    n_files: int
    n_folders: int
    seed: int

    def folder_path(self, f: int) -> str:
        return f"data/batch-{f:03d}"

    def file_name(self, i: int) -> str:
        return f"img-{i:06d}.jpg"

    def folder_of(self, i: int) -> int:
        return i % self.n_folders

    def foreign(self, i: int) -> dict[str, JsonValue]:
        """Keys nobody's manifest owns (must survive every apply)."""
        return {"foreign.id": i, "foreign.note": f"keep-{i}", "foreign.nested": {"a": [i, "x"]}}

    def live_team(self, i: int) -> dict[str, JsonValue]:
        """``team.*`` keys live before the apply (a third of the files have stale values, a third none)."""
        if i % 3 == 0:
            return {}
        if i % 3 == 1:
            # A stale owned key to prune on some of them (few enough to stay under the blast-radius limits).
            return {"team.score": -1, "team.label": "old", **({"team.stale": True} if i % 9 == 1 else {})}
        return self.desired_team(i)  # already as desired: must not be written

    def desired_team(self, i: int) -> dict[str, JsonValue]:
        rng = random.Random(self.seed * 1_000_003 + i)
        return {
            "team.score": round(rng.uniform(0, 100), 3),
            "team.label": f"label-{rng.randrange(10**6)}",
            "team.split": rng.choice(["test", "train", "val"]),
        }

    def expected(self, i: int) -> dict[str, JsonValue]:
        """A file's whole metadata dict after a converged apply."""
        return {**self.foreign(i), **self.desired_team(i)}

    def snapshot(self) -> Snapshot:
        snap = Snapshot(schema={k: dict(v) for k, v in SCHEMA.items()})
        snap.folders.append(LiveFolder(uuid_of(1, 0), None, "data", "data"))
        for f in range(self.n_folders):
            snap.folders.append(
                LiveFolder(uuid_of(1, f + 1), uuid_of(1, 0), f"batch-{f:03d}", self.folder_path(f))
            )
        for i in range(self.n_files):
            md = {**self.foreign(i), **self.live_team(i)}
            snap.items.append(
                LiveItem(uuid_of(2, i), uuid_of(1, self.folder_of(i) + 1), self.file_name(i), "image", md)
            )
        return snap

    def changed_files(self) -> int:
        """How many files a converging apply writes (those whose ``team.*`` keys are not yet as desired)."""
        return sum(1 for i in range(self.n_files) if i % 3 != 2)

    def wrong_files(self, state: Snapshot) -> list[str]:
        """Files whose metadata is not exactly the expected dict (foreign keys lost, team keys wrong)."""
        by_uuid = {it.uuid: it for it in state.items}
        wrong: list[str] = []
        for i in range(self.n_files):
            it = by_uuid.get(uuid_of(2, i))
            if it is None or _canon(it.metadata) != _canon(self.expected(i)):
                wrong.append(self.file_name(i))
        return wrong

    def lost_foreign_keys(self, state: Snapshot) -> int:
        """How many foreign keys (over all files) are missing or changed."""
        by_uuid = {it.uuid: it for it in state.items}
        lost = 0
        for i in range(self.n_files):
            it = by_uuid.get(uuid_of(2, i))
            md: Mapping[str, JsonValue] = it.metadata if it is not None else {}
            for k, v in self.foreign(i).items():
                if k not in md or _canon(md[k]) != _canon(v):
                    lost += 1
        return lost

    # -- manifests (for the CLI) ------------------------------------------------------------------------

    def write_manifests(self, root: Path, provider: Mapping[str, JsonValue]) -> Path:
        """A manifest directory: Workspace (``provider``), MetadataSchema, one merge manifest per folder
        owning ``team.*`` with a JSONL source of per-file values. Returns the directory."""
        root.mkdir(parents=True, exist_ok=True)
        ws = {
            "apiVersion": "reconciler/v1",
            "kind": "Workspace",
            "provider": dict(provider),
            "settings": {"parallelism": 2, "journal_dir": ".reconciler/journal", "undeclared_keys": "allow"},
        }
        (root / "workspace.yaml").write_text(json.dumps(ws, indent=1) + "\n")
        schema_doc = {
            "apiVersion": "reconciler/v1",
            "kind": "MetadataSchema",
            "keys": {
                "team.score": "number",
                "team.label": "varchar",
                "team.split": {"type": "enum", "values": ["test", "train", "val"]},
            },
        }
        (root / "schema.yaml").write_text(json.dumps(schema_doc, indent=1) + "\n")
        (root / "files").mkdir(exist_ok=True)
        (root / "data").mkdir(exist_ok=True)
        rows: dict[int, list[str]] = {f: [] for f in range(self.n_folders)}
        for i in range(self.n_files):
            rows[self.folder_of(i)].append(
                json.dumps({"name": self.file_name(i), "metadata": self.desired_team(i)})
            )
        for f in range(self.n_folders):
            (root / "data" / f"batch-{f:03d}.jsonl").write_text("\n".join(rows[f]) + "\n")
            doc = {
                "apiVersion": "reconciler/v1",
                "kind": "FileMetadata",
                "folder": self.folder_path(f),
                "mode": "merge",
                "owns": ["team.*"],
                "source": f"data/batch-{f:03d}.jsonl",
            }
            (root / "files" / f"batch-{f:03d}.yaml").write_text(json.dumps(doc, indent=1) + "\n")
        return root

    def write_seed(self, path: Path) -> Path:
        snap = self.snapshot()
        write_snapshot(path, snap.schema, snap.folders, snap.items)
        return path


def _canon(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def desired_state(scenario: Scenario, root: Path) -> DesiredState:
    """The DesiredState that :meth:`Scenario.write_manifests` describes (built in code, sources on disk)."""
    from reconciler.errors import SourceLocation
    from reconciler.model import (
        DesiredKey,
        FileManifest,
        Mode,
        SchemaManifest,
        SourceSpec,
        UndeclaredKeys,
        Workspace,
        WorkspaceSettings,
    )
    from reconciler.providers.sqlite import SqliteConfig
    from reconciler.schema import FieldSpec, KeyType

    scenario.write_manifests(root, {"type": "sqlite"})
    loc = SourceLocation("schema.yaml", 1, 1)
    keys = {
        "team.score": DesiredKey(FieldSpec(KeyType.NUMBER), loc),
        "team.label": DesiredKey(FieldSpec(KeyType.VARCHAR), loc),
        "team.split": DesiredKey(FieldSpec(KeyType.ENUM, values=("test", "train", "val")), loc),
    }
    files = tuple(
        FileManifest(
            path=f"files/batch-{f:03d}.yaml",
            folder=scenario.folder_path(f),
            mode=Mode.MERGE,
            files=(),
            location=SourceLocation(f"files/batch-{f:03d}.yaml", 1, 1),
            owns=("team.*",),
            source=SourceSpec(
                f"data/batch-{f:03d}.jsonl", "jsonl", SourceLocation(f"files/batch-{f:03d}.yaml", 6, 9)
            ),
        )
        for f in range(scenario.n_folders)
    )
    ws = Workspace(
        SqliteConfig(),
        WorkspaceSettings(undeclared_keys=UndeclaredKeys.ALLOW),
        SourceLocation("workspace.yaml", 1, 1),
    )
    return DesiredState(
        root=str(root), workspace=ws, schema=SchemaManifest(keys, loc), files=files, digest_of="sha256:x"
    )
