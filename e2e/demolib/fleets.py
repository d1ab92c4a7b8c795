"""Fleets derived from examples/03-local for the scale-from-zero scenarios and benchmark."""

from __future__ import annotations

import copy
from typing import Any

from demolib.installing import LOCAL_MODEL, pods_of
from demolib.tools import Tools


def cold_fleet(example: dict[str, Any], name: str, budget: str, idle_delay: str) -> dict[str, Any]:
    """The example (parsed examples/03-local/fleet.yaml) reduced to its Gemma model at min 0 (built-in
    autoscaler, one request per replica), its fallback and its router, with the given cold-start budget."""
    (local,) = [m for m in example["spec"]["models"] if m["name"] == LOCAL_MODEL]
    autoscaling = {"mode": "builtin", "targetInFlight": 1, "window": "10s", "scaleDownDelay": idle_delay}
    model = copy.deepcopy(local) | {"replicas": {"min": 0, "max": 1}, "autoscaling": autoscaling}
    spec = {
        "models": [model | {"tasks": ["chat"]}],
        "fallbacks": copy.deepcopy(example["spec"]["fallbacks"]),
        "routing": {"defaultTask": "chat", "coldStartBudget": budget},
        "router": copy.deepcopy(example["spec"]["router"]),
    }
    meta = {"name": name}
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "ModelFleet", "metadata": meta, "spec": spec}


def model_deployment(fleet: str) -> str:
    """The Deployment of the fleet's local model."""
    return f"{fleet}-{LOCAL_MODEL}"


def deployment(tools: Tools, namespace: str, fleet: str) -> dict[str, Any]:
    found: dict[str, Any] = tools.get_json("deployment", model_deployment(fleet), "-n", namespace)
    return found


def ready_replicas(tools: Tools, namespace: str, fleet: str) -> int:
    return int(deployment(tools, namespace, fleet).get("status", {}).get("readyReplicas") or 0)


def parked_at_zero(tools: Tools, namespace: str, fleet: str) -> bool:
    """Scaled to zero and every pod gone."""
    pods = pods_of(tools, namespace, f"flotilla.dev/fleet={fleet},flotilla.dev/model={LOCAL_MODEL}")
    return deployment(tools, namespace, fleet)["spec"].get("replicas") == 0 and not pods
