"""Acceptance: who owns a model Deployment's replica count when nothing autoscales it (`mode: none`).

The fleet's count is what the Deployment is created with and reset to when that count changes in the
spec; in between `kubectl scale` sticks: reconciles (spec edits, drift restores) and operator restarts
keep it. At zero replicas the model's phase is ScaledToZero.
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
    body = ok.get_json("deployment", DEPLOYMENT, "-n", namespace, "--show-managed-fields")
    owners = {
        m["manager"]
        for m in body["metadata"].get("managedFields", [])
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    }
    assert "flotilla" not in owners
    assert body["metadata"]["annotations"]["flotilla.dev/replicas"] == "1"

    # a new count in the fleet wins over the hand-set one, and 0 parks the model
    patch_fleet(namespace, [{"op": "replace", "path": "/spec/models/0/replicas/min", "value": 2}])
    wait_spec_replicas(namespace, 2)
    patch_fleet(namespace, [{"op": "replace", "path": "/spec/models/0/replicas/min", "value": 0}])
    wait_spec_replicas(namespace, 0)

    def parked() -> bool:
        status = ok.get_json("modelfleet", FLEET, "-n", namespace).get("status") or {}
        return any(m["name"] == "coder" and m["phase"] == "ScaledToZero" for m in status.get("models", []))

    ok.wait_until(parked, 60, "status.models[coder].phase ScaledToZero")
    assert not ok.log_errors(operator.log()), operator.log()[-3000:]
