"""reconciler: metadata as code for Encord — plan and apply the metadata schema and files' custom metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler._version import __version__

if TYPE_CHECKING:
    from reconciler.apply import ApplyResult, FileStatus, apply_plan
    from reconciler.errors import (
        ManifestError,
        ManifestValidationError,
        PlanError,
        PlanFormatError,
        ProviderError,
        ReconcilerError,
        StalePlanError,
    )
    from reconciler.manifest.loader import load_manifests
    from reconciler.model import DesiredState
    from reconciler.plan.model import Plan
    from reconciler.plan.planfile import read_planfile, write_planfile
    from reconciler.plan.planner import Targets, make_plan
    from reconciler.providers.base import StateProvider
    from reconciler.providers.registry import open_provider
    from reconciler.render.json import render_plan_json
    from reconciler.render.markdown import render_plan_markdown
    from reconciler.render.text import render_plan_text

__all__ = [
    "ApplyResult",
    "DesiredState",
    "FileStatus",
    "ManifestError",
    "ManifestValidationError",
    "Plan",
    "PlanError",
    "PlanFormatError",
    "ProviderError",
    "ReconcilerError",
    "StalePlanError",
    "StateProvider",
    "Targets",
    "__version__",
    "apply_plan",
    "load_manifests",
    "make_plan",
    "open_provider",
    "read_planfile",
    "render_plan_json",
    "render_plan_markdown",
    "render_plan_text",
    "write_planfile",
]

#: Where each public name lives; imported on first use so that `reconciler --version` starts fast.
_LAZY = {
    "ApplyResult": "reconciler.apply",
    "DesiredState": "reconciler.model",
    "FileStatus": "reconciler.apply",
    "ManifestError": "reconciler.errors",
    "ManifestValidationError": "reconciler.errors",
    "Plan": "reconciler.plan.model",
    "PlanError": "reconciler.errors",
    "PlanFormatError": "reconciler.errors",
    "ProviderError": "reconciler.errors",
    "ReconcilerError": "reconciler.errors",
    "StalePlanError": "reconciler.errors",
    "StateProvider": "reconciler.providers.base",
    "Targets": "reconciler.plan.planner",
    "apply_plan": "reconciler.apply",
    "load_manifests": "reconciler.manifest.loader",
    "make_plan": "reconciler.plan.planner",
    "open_provider": "reconciler.providers.registry",
    "read_planfile": "reconciler.plan.planfile",
    "render_plan_json": "reconciler.render.json",
    "render_plan_markdown": "reconciler.render.markdown",
    "render_plan_text": "reconciler.render.text",
    "write_planfile": "reconciler.plan.planfile",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reconciler' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
