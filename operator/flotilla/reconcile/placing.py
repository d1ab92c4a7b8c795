"""status.packs, each model's pack and the Packed condition, from a packing plan. Pure, no I/O.

The plan is what the operator renders: one pack Deployment per planned pod (``flotilla.render.packs``).
"""

from __future__ import annotations

from typing import Any

from flotilla.api.common import MAX_TEXT
from flotilla.packing import plans


def packs(plan: plans.Plan) -> list[dict[str, Any]]:
    """status.packs: one entry per planned pod."""
    return [
        {
            "name": pod.name,
            "pack": pod.pack,
            "accelerator": str(pod.kind),
            "models": list(pod.models),
            "memoryUsed": plans.quantity(pod.used),
            "memoryBudget": plans.quantity(pod.budget.usable),
            "memoryCapacity": plans.quantity(pod.budget.capacity),
        }
        for pod in plan.pods
    ]


def condition(plan: plans.Plan) -> tuple[bool, str, str]:
    """(ok, reason, message) of the Packed condition: True when every opted-in model has a pack pod."""
    if plan.unplaced:
        cannot = "; ".join(f"{u.model}: {u.reason}: {u.message}" for u in plan.unplaced)
        message = f"cannot pack {cannot} (it runs in a pod of its own)"
        return False, "ModelsDoNotFit", message[:MAX_TEXT]
    placed = sum(len(p.models) for p in plan.pods)
    message = f"{placed} models packed into {len(plan.pods)} pods; {plans.SERVED}"
    return True, "AllModelsPacked", message
