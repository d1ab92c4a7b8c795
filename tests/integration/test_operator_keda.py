"""Acceptance: `autoscaling.mode: keda` models on a cluster without KEDA (the model is Degraded, saying
why, and the rest of the fleet is applied) and with KEDA's ScaledObject resource served (the ScaledObject
is applied, owned by the fleet).

The local cluster has no KEDA. The "served" case installs KEDA's own CustomResourceDefinitions (v2.20.2,
from its Go module: `e2e/cluster build` fetches them) for the duration of that test and deletes them
afterwards, so the ScaledObject the operator applies (server-side apply, which refuses fields the schema
does not declare) must fit KEDA's real schema; the "not served" case runs first and requires them absent.
KEDA's operator scaling such a model is test_keda_scaling.py.
"""

from __future__ import annotations

import json
from typing import Any

import operatorkit as ok
import pytest

pytestmark = pytest.mark.cluster

FLEET = "kedafleet"
SCALED_OBJECT = f"{FLEET}-coder"
CRD_NAME = ok.KEDA_SCALED_OBJECTS


def fleet_doc(namespace: str) -> dict[str, Any]:
    return ok.gpu_fleet(namespace, FLEET, {"min": 0, "max": 3}, {"mode": "keda", "targetInFlight": 4})


def crd_exists() -> bool:
    return ok.kubectl_try("get", "crd", CRD_NAME).returncode == 0


def model_status(namespace: str) -> dict[str, Any]:
    status = ok.get_json("modelfleet", FLEET, "-n", namespace).get("status") or {}
    return next((m for m in status.get("models", []) if m["name"] == "coder"), {})


def test_keda_model_is_degraded_when_keda_is_not_installed(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    assert not crd_exists(), f"{CRD_NAME} is installed; this test needs a cluster without KEDA"
    ok.apply_doc(fleet_doc(namespace))
    ok.wait_until(lambda: model_status(namespace).get("phase") == "Degraded", 90, "model coder Degraded")
    message = model_status(namespace)["message"]
    assert "KEDA" in message and "scaledobjects.keda.sh/v1alpha1" in message, message
    fleet = ok.get_json("modelfleet", FLEET, "-n", namespace)
    assert ok.condition(fleet, "Degraded") == "True"
    # the rest of the fleet is applied all the same
    assert ok.kubectl_try("get", "deployment", SCALED_OBJECT, "-n", namespace).returncode == 0
    assert ok.kubectl_try("get", "deployment", f"{FLEET}-router", "-n", namespace).returncode == 0
    assert not ok.log_errors(operator.log()), operator.log()[-3000:]


def test_keda_scaled_object_is_applied_with_owner_when_served(
    keda_crds: None, operator: ok.OperatorProcess, namespace: str
) -> None:
    ok.apply_doc(fleet_doc(namespace))

    def scaled_object() -> dict[str, Any] | None:
        found = ok.kubectl_try("get", "scaledobjects.keda.sh", SCALED_OBJECT, "-n", namespace, "-o", "json")
        return json.loads(found.stdout) if found.returncode == 0 else None

    body = ok.wait_until(scaled_object, 90, f"ScaledObject {SCALED_OBJECT}")
    fleet = ok.get_json("modelfleet", FLEET, "-n", namespace)
    (owner,) = body["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "ModelFleet",
        FLEET,
        fleet["metadata"]["uid"],
        True,
    )
    assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "flotilla"
    spec = body["spec"]
    assert spec["scaleTargetRef"]["name"] == SCALED_OBJECT
    assert (spec["idleReplicaCount"], spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 1, 3)
    assert spec["triggers"][0]["metadata"]["threshold"] == "4"
    # nothing the operator rendered was pruned by KEDA's schema
    assert set(spec) >= {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "advanced", "triggers"}
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert set(behavior) == {"scaleUp", "scaleDown"}
    trigger = spec["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert set(trigger["metadata"]) == {"serverAddress", "query", "threshold", "activationThreshold"}
    # the Deployment leaves spec.replicas to KEDA: the operator's field manager does not own it
    assert "flotilla" not in ok.replicas_owners(namespace, SCALED_OBJECT)
    ok.wait_until(lambda: model_status(namespace).get("phase") not in (None, "Pending"), 90, "model status")
    assert model_status(namespace)["phase"] != "Degraded", model_status(namespace)
    assert not ok.log_errors(operator.log()), operator.log()[-3000:]
