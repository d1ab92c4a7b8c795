"""Acceptance: on the real apiserver and kube-scheduler (kwok nodes), the fleet's status says why the
scheduler cannot place a model's pods, and shows the packing plan (planned only)."""

from __future__ import annotations

import json
from typing import Any

import operatorkit as ok
import pytest

from clusterlib import manifests

pytestmark = pytest.mark.cluster

TIMEOUT = 120.0


def _fleet(namespace: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = ok.get_json("modelfleet", name, "-n", namespace)
    return body


def _model(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next((m for m in (body.get("status") or {}).get("models") or [] if m["name"] == name), {})


def _condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def test_a_model_asking_more_gpus_than_any_node_has_says_insufficient_gpu_until_it_fits(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    doc = ok.gpu_fleet(namespace, "greedy", {"min": 1}, {"mode": "none"})
    doc["spec"]["models"][0]["accelerator"]["gpus"] = manifests.GPU_COUNT + 1  # the kwok GPU node has 8
    ok.apply_doc(doc)

    def unschedulable() -> dict[str, Any] | None:
        body = _fleet(namespace, "greedy")
        return body if "Insufficient nvidia.com/gpu" in _model(body, "coder").get("message", "") else None

    body = ok.wait_until(unschedulable, TIMEOUT, "the scheduler's reason in the model's status")
    coder = _model(body, "coder")
    assert coder["phase"] == "Progressing"
    assert coder["message"].startswith("0/1 replicas ready; pods unschedulable: 0/")  # 0/N nodes available
    models_ready, ready = _condition(body, "ModelsReady"), _condition(body, "Ready")
    assert (models_ready["status"], models_ready["reason"]) == ("False", "ModelsUnschedulable")
    assert "Insufficient nvidia.com/gpu" in models_ready["message"]
    assert ready["reason"] == "ModelsUnschedulable" and "Insufficient nvidia.com/gpu" in ready["message"]
    described = ok.kubectl("describe", "modelfleet", "greedy", "-n", namespace)
    assert "Insufficient nvidia.com/gpu" in described

    patch = [{"op": "replace", "path": "/spec/models/0/accelerator/gpus", "value": 1}]
    ok.kubectl("patch", "modelfleet", "greedy", "-n", namespace, "--type=json", "-p", json.dumps(patch))

    def placed() -> dict[str, Any] | None:
        body = _fleet(namespace, "greedy")
        return body if _model(body, "coder").get("phase") == "Ready" else None

    body = ok.wait_until(placed, TIMEOUT, "the model Ready once one GPU is asked for")
    assert "unschedulable" not in _model(body, "coder")["message"]
    assert _condition(body, "ModelsReady")["reason"] == "AllModelsReady"


def _cpu_model(name: str, memory: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"uri": "pvc://gguf/gemma-3-270m-it-Q4_K_M.gguf"},
        "runtime": "llamacpp",
        "quantization": "Q4_K_M",
        "maxContextLength": 2048,
        "placement": {"memory": memory},
    }


def test_the_packing_plan_is_in_status_and_a_model_that_fits_nowhere_is_named(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    doc = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": "packed", "namespace": namespace},
        "spec": {
            "placement": {"pack": "small"},
            "packs": [{"name": "small", "memory": "2Gi", "maxLoaded": 2}],
            "models": [_cpu_model("a", "300Mi"), _cpu_model("b", "300Mi"), _cpu_model("c", "300Mi"),
                       _cpu_model("d", "1200Mi"), _cpu_model("e", "3Gi")],
        },
    }  # fmt: skip
    ok.apply_doc(doc)
    body = ok.wait_until(
        lambda: (b := _fleet(namespace, "packed")) and _condition(b, "Packed") and b,
        TIMEOUT,
        "the Packed condition",
    )
    packs = body["status"]["packs"]
    assert [(p["name"], p["models"]) for p in packs] == [("small-1", ["d"]), ("small-2", ["a", "b", "c"])]
    assert {p["memoryBudget"] for p in packs} == {"1.8Gi"} and {p["memoryCapacity"] for p in packs} == {"2Gi"}
    packed = _condition(body, "Packed")
    assert (packed["status"], packed["reason"]) == ("False", "ModelsDoNotFit")
    assert "e: TooLarge: needs" in packed["message"] and "planned only" in packed["message"]
    assert {m["name"]: m.get("pack") for m in body["status"]["models"]} == {
        "a": "small-2", "b": "small-2", "c": "small-2", "d": "small-1", "e": None,
    }  # fmt: skip
    # Planned only: every model still has a Deployment of its own.
    deployments = ok.get_json("deployments", "-n", namespace, "-l", "flotilla.dev/component=model")["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == [f"packed-{m}" for m in "abcde"]
    described = ok.kubectl("describe", "modelfleet", "packed", "-n", namespace)
    assert "small-2" in described and "Memory Budget" in described
    selector = "reason=ModelsDoNotFit,involvedObject.name=packed"
    warnings = ok.wait_until(
        lambda: ok.get_json("events", "-n", namespace, f"--field-selector={selector}")["items"],
        30,
        "the Event",
    )
    assert [w["type"] for w in warnings] == ["Warning"] and "e: TooLarge" in warnings[0]["message"]
