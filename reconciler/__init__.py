"""reconciler: metadata as code for Encord — plan and apply the metadata schema and files' custom metadata."""

from __future__ import annotations

__version__ = "0.1.0"

from reconciler.apply import ApplyResult, FileStatus, apply_plan
from reconciler.errors import (
    ApplyError,
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
    "ApplyError",
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
