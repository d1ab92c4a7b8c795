"""Acceptance: who owns a model Deployment's replica count.

When nothing autoscales it (`mode: none`), the fleet's count is what the Deployment is created with and
reset to when that count changes in the spec; in between `kubectl scale` sticks: reconciles (spec edits,
drift restores) and operator restarts keep it. At zero replicas the model's phase is ScaledToZero.
An autoscaled model's Deployment is created at `replicas.min` (a model at min 0 starts no pod before its
first request), and from then on only the autoscaler changes the count.
"""

from __future__ import annotations

import json
import time
from typing import Any

import operatorkit as ok
import pytest

pytestmark = pytest.mark.cluster

FLEET = "pinned"
DEPLOYMENT = f"{FLEET}-coder"


def fleet_doc(namespace: str) -> dict[str, Any]:
    return ok.gpu_fleet(namespace, FLEET, {"min": 1, "max": 3}, {"mode": "none"})


def spec_replicas(namespace: str) -> int | None:
    found = ok.kubectl_try("get", "deployment", DEPLOYMENT, "-n", namespace, "-o", "json")
    return int(json.loads(found.stdout)["spec"]["replicas"]) if found.returncode == 0 else None


def wait_spec_replicas(namespace: str, want: int, timeout: float = 90) -> None:
    ok.wait_until(lambda: spec_replicas(namespace) == want, timeout, f"{DEPLOYMENT} spec.replicas {want}")


def patch_fleet(namespace: str, patch: list[dict[str, Any]]) -> int:
    ok.kubectl("patch", "modelfleet", FLEET, "-n", namespace, "--type=json", "-p", json.dumps(patch))
    return int(ok.get_json("modelfleet", FLEET, "-n", namespace)["metadata"]["generation"])


def wait_observed(namespace: str, generation: int) -> None:
    def observed() -> bool:
        status = ok.get_json("modelfleet", FLEET, "-n", namespace).get("status") or {}
        return int(status.get("observedGeneration") or 0) >= generation

    ok.wait_until(observed, 90, f"the operator to apply generation {generation}")


def parked(namespace: str, fleet: str) -> bool:
    """The fleet's status reports its model ``coder`` ScaledToZero."""
    status = ok.get_json("modelfleet", fleet, "-n", namespace).get("status") or {}
    return any(m["name"] == "coder" and m["phase"] == "ScaledToZero" for m in status.get("models", []))


def reasons(namespace: str) -> list[str]:
    events = ok.get_json("events", "-n", namespace)["items"]
    return [e["reason"] for e in events]


def test_kubectl_scale_sticks_until_the_fleet_count_changes(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    ok.apply_doc(fleet_doc(namespace))
    wait_spec_replicas(namespace, 1)

    ok.kubectl("scale", f"deployment/{DEPLOYMENT}", "--replicas=3", "-n", namespace)
    time.sleep(5)  # the Deployment events reach the operator meanwhile
    assert spec_replicas(namespace) == 3
    assert "ChildRestored" not in reasons(namespace), "a replica count alone is not drift"

    # a spec edit reconciles every child: the hand-set count stays
    generation = patch_fleet(namespace, [
        {"op": "add", "path": "/spec/models/0/args", "value": ["--max-model-len", "2048"]}
    ])  # fmt: skip
    wait_observed(namespace, generation)
    time.sleep(2)
    assert spec_replicas(namespace) == 3

    # a drift restore re-applies the whole Deployment: the hand-set count stays
    ok.kubectl("set", "image", f"deployment/{DEPLOYMENT}", "*=example.invalid/x:1", "-n", namespace)
    ok.wait_until(lambda: "ChildRestored" in reasons(namespace), 60, "the operator to restore the image")
    assert spec_replicas(namespace) == 3

    # so does an operator restart (resume handlers re-apply everything)
    operator.stop()
    operator.start()
    time.sleep(8)
    assert spec_replicas(namespace) == 3

    # the operator's field manager never owns spec.replicas once the Deployment exists
    assert "flotilla" not in ok.replicas_owners(namespace, DEPLOYMENT)
    body = ok.get_json("deployment", DEPLOYMENT, "-n", namespace)
    assert body["metadata"]["annotations"]["flotilla.dev/replicas"] == "1"

    # a new count in the fleet wins over the hand-set one, and 0 parks the model
    patch_fleet(namespace, [{"op": "replace", "path": "/spec/models/0/replicas/min", "value": 2}])
    wait_spec_replicas(namespace, 2)
    patch_fleet(namespace, [{"op": "replace", "path": "/spec/models/0/replicas/min", "value": 0}])
    wait_spec_replicas(namespace, 0)

    ok.wait_until(lambda: parked(namespace, FLEET), 60, "status.models[coder].phase ScaledToZero")
    assert not ok.log_errors(operator.log()), operator.log()[-3000:]


def test_an_autoscaled_model_is_created_at_its_minimum(operator: ok.OperatorProcess, namespace: str) -> None:
    """min 0: created at zero, so no pod starts before demand (not the Kubernetes default of 1 and a pod
    parked again after the scale-down delay); min 2: created at 2. Neither count is the reconciler's."""
    idle = ok.gpu_fleet(namespace, "idle", {"min": 0, "max": 2}, {"mode": "builtin"})
    busy = ok.gpu_fleet(namespace, "busy", {"min": 2, "max": 3}, {"mode": "builtin"})
    ok.apply_doc(idle)
    ok.apply_doc(busy)

    def created() -> dict[str, dict[str, Any]] | None:
        found = ok.get_json("deployments", "-n", namespace)["items"]
        named = {d["metadata"]["name"]: d for d in found}
        return named if {"idle-coder", "busy-coder"} <= set(named) else None

    deployments = ok.wait_until(created, 90, "the operator to create both model Deployments")
    for name, count in (("idle-coder", 0), ("busy-coder", 2)):
        body = deployments[name]
        assert body["spec"]["replicas"] == count, name
        assert body["metadata"]["annotations"]["flotilla.dev/initial-replicas"] == str(count), name
        assert "flotilla" not in ok.replicas_owners(namespace, name), name
    ok.wait_until(lambda: model_pods(namespace, "busy") == 2, 90, "busy's 2 pods")

    ok.wait_until(lambda: parked(namespace, "idle"), 60, "idle's model ScaledToZero")
    time.sleep(3)  # a pod created by mistake would exist by now (kwok runs it at once)
    assert model_pods(namespace, "idle") == 0
    selector = "flotilla.dev/fleet=idle,flotilla.dev/component=model"
    replicasets = ok.get_json("replicasets", "-n", namespace, "-l", selector)["items"]
    assert [rs["spec"]["replicas"] for rs in replicasets] == [0]  # the only ReplicaSet never asked for one
    assert "ScaleDown" not in reasons(namespace)  # nothing had to be parked
    assert not ok.log_errors(operator.log()), operator.log()[-3000:]


def model_pods(namespace: str, fleet: str) -> int:
    """How many pods of the fleet's models exist (any phase; its router's aside)."""
    selector = f"flotilla.dev/fleet={fleet},flotilla.dev/component=model"
    return len(ok.get_json("pods", "-n", namespace, "-l", selector)["items"])
