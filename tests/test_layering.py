"""Layers point down: every import inside ``reconciler/`` goes to the same layer or a lower one, with no cycles.

Each module's imports are read from its source (``ast``): top-level, function-level and ``TYPE_CHECKING``
imports alike. ``LAYERS`` maps a module or package prefix to its layer; the longest prefix decides, so a
new module inside a listed package needs no new line, and a new top-level module needs one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"

#: Module or package prefix -> layer (0 is the bottom). ``reconciler`` itself (its ``__init__``) is exact.
LAYERS: dict[str, int] = {
    "reconciler._version": 0,
    "reconciler.errors": 0,
    "reconciler.fileio": 0,
    "reconciler.forked": 0,
    "reconciler.jsoncodec": 0,
    "reconciler.jsonio": 0,
    "reconciler.types": 0,
    "reconciler.redact": 0,
    "reconciler.progress": 0,
    "reconciler.model": 1,
    "reconciler.schema": 1,
    "reconciler.values": 1,
    "reconciler.frames": 1,
    "reconciler.reserved": 1,
    "reconciler.undeclared": 1,
    "reconciler.snapshot": 2,
    "reconciler.providers": 3,
    "reconciler.manifest": 3,
    "reconciler.testing": 3,
    "reconciler.config": 4,
    "reconciler.lock": 4,
    "reconciler.plan": 5,
    "reconciler.apply": 6,
    "reconciler.render": 6,
    "reconciler.journal": 7,
    "reconciler.rollback": 7,
    "reconciler": 8,
    "reconciler.__main__": 8,
    "reconciler.cli": 8,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """The ``reconciler`` modules ``path`` imports (``from pkg import name`` counts as ``pkg.name`` if it is one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "reconciler")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "reconciler":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    found.discard(module)
    return found


def _layer(module: str) -> int | None:
    if module == "reconciler":
        return LAYERS["reconciler"]
    best = max(
        (p for p in LAYERS if p != "reconciler" and (module == p or module.startswith(p + "."))),
        key=len,
        default=None,
    )
    return None if best is None else LAYERS[best]


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH: dict[str, set[str]] = {m: _imports(p, m) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _layer(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str):
    own = _layer(module)
    assert own is not None
    upward = sorted(f"{t} (layer {_layer(t)})" for t in GRAPH[module] if (_layer(t) or 0) > own)
    assert upward == [], f"{module} (layer {own}) imports upward"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components; each component of two or more modules is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return sorted(cycles)


def test_the_import_graph_has_no_cycles():
    assert _cycles(GRAPH) == []


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path: Path):
    # The checker itself can fail: a plan module importing render is upward, modules importing each other
    # in a ring are a cycle, and a new top-level module needs a line in LAYERS.
    assert (_layer("reconciler.render.json") or 0) > (_layer("reconciler.plan.codec") or 0)
    assert _layer("reconciler.plan.some_new_module") == LAYERS["reconciler.plan"]
    assert _layer("reconciler.newthing") is None
    src = tmp_path / "x.py"
    src.write_text("from reconciler.render import json\nfrom reconciler import errors\n", encoding="utf-8")
    assert _imports(src, "reconciler.plan.x") == {"reconciler.render.json", "reconciler.errors"}
    ring = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(ring) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_cli_types_its_plans_and_providers():
    # No ``Any`` in cli.py: plans, providers, hooks and results are named by their types.
    tree = ast.parse(MODULES["reconciler.cli"].read_text(encoding="utf-8"))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
    }
    assert "Any" not in names
