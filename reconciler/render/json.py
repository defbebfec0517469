"""``plan --format json``: the plan's JSON form (``reconciler.plan.codec``) as text."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.plan.codec import plan_to_dict

if TYPE_CHECKING:
    from reconciler.plan.model import Plan

__all__ = ["render_plan_json"]


def render_plan_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2, ensure_ascii=False) + "\n"
