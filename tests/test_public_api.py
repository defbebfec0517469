from __future__ import annotations

import reconciler

EXPECTED = [
    "ApplyError", "ApplyResult", "DesiredState", "FileStatus", "ManifestError", "ManifestValidationError", "Plan",
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
