from __future__ import annotations

import pytest

import reconciler

EXPECTED = [
    "ApplyResult", "DesiredState", "FileStatus", "ManifestError", "ManifestValidationError", "Plan",
    "PlanError", "PlanFormatError", "ProviderError", "ReconcilerError", "StalePlanError", "StateProvider", "Targets",
    "__version__", "apply_plan", "load_manifests", "make_plan", "open_provider", "read_planfile", "render_plan_json",
    "render_plan_markdown", "render_plan_text", "write_planfile",
]  # fmt: skip


def test_public_api_is_exactly_the_exported_names():
    assert reconciler.__all__ == EXPECTED
    for name in EXPECTED:
        assert hasattr(reconciler, name), name


def test_version_is_a_string():
    assert isinstance(reconciler.__version__, str) and reconciler.__version__.count(".") == 2


def test_the_version_has_one_source():
    import importlib.metadata
    from pathlib import Path

    from reconciler._version import __version__

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "reconciler._version.__version__"}
    assert reconciler.__version__ == __version__ == importlib.metadata.version("reconciler")


def test_every_runtime_dependency_is_used():
    # A dependency nothing imports is a dead end (and attack surface): each one is imported by reconciler/.
    import re
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parent.parent
    deps = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    names = {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower() for d in deps}
    module_of = {"ruamel.yaml": "ruamel"}
    # Needed by a dependency at run time, not imported by reconciler: cryptography loads bcrypt lazily to
    # decrypt passphrase-protected OpenSSH keys (tests/unit/providers/encord/test_auth.py decrypts one).
    names -= {"bcrypt"}
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (root / "reconciler").rglob("*.py"))
    unused = sorted(
        n
        for n in names
        if not re.search(rf"^\s*(import|from) {re.escape(module_of.get(n, n))}\b", sources, re.M)
    )
    assert unused == []
