"""Acceptance: on the real apiserver and kube-scheduler (kwok nodes), the fleet's status says why the
scheduler cannot place a model's pods, and renders the packing plan: one pack Deployment per planned pod
(CPU: flotilla pack-serve; GPU: ray.serve.llm, scheduled onto the kwok GPU node, not run)."""

from __future__ import annotations

import json
from typing import Any

import operatorkit as ok
import pytest
import yaml

from clusterlib import manifests

pytestmark = pytest.mark.cluster

TIMEOUT = 120.0
GGUF_URL = "https://huggingface.co/unsloth/gemma-3-270m-it-GGUF/resolve/main/gemma-3-270m-it-Q4_K_M.gguf"


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
        "source": {"uri": GGUF_URL},  # no PVC here: its pods would never be scheduled
        "runtime": "llamacpp",
        "quantization": "Q4_K_M",
        "maxContextLength": 2048,
        "placement": {"memory": memory},
    }


def test_three_packed_models_share_one_pack_deployment_a_fourth_gets_a_second_and_status_says_so(
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
    assert "e: TooLarge: needs" in packed["message"] and "planned only" not in packed["message"]
    assert {m["name"]: m.get("pack") for m in body["status"]["models"]} == {
        "a": "small-2", "b": "small-2", "c": "small-2", "d": "small-1", "e": None,
    }  # fmt: skip
    # One pack Deployment per planned pod; only the model that fits no pack has a Deployment of its own.
    own = ok.get_json("deployments", "-n", namespace, "-l", "flotilla.dev/component=model")["items"]
    assert [d["metadata"]["name"] for d in own] == ["packed-e"]
    pack_deployments = ok.get_json("deployments", "-n", namespace, "-l", "flotilla.dev/component=pack")[
        "items"
    ]
    by_name = {d["metadata"]["name"]: d for d in pack_deployments}
    assert sorted(by_name) == ["packed-pack-small-1", "packed-pack-small-2"]
    assert by_name["packed-pack-small-2"]["metadata"]["annotations"]["flotilla.dev/pack-models"] == "a,b,c"
    container = by_name["packed-pack-small-2"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["flotilla", "pack-serve"] and "flotilla-ray:" in container["image"]
    config = yaml.safe_load(
        ok.get_json("configmap", "packed-pack-small-2", "-n", namespace)["data"]["pack.yaml"]
    )
    assert [m["name"] for m in config["models"]] == ["a", "b", "c"] and config["maxLoaded"] == 2
    router = yaml.safe_load(ok.get_json("configmap", "packed-router", "-n", namespace)["data"]["router.yaml"])
    services = {m["name"]: m["service"] for m in router["models"]}
    assert services["b"] == {
        "namespace": namespace,
        "name": "packed-pack-small-2",
        "port": 8000,
        "path": "/b",
    }
    assert services["e"]["name"] == "packed-e" and services["e"]["path"] == ""
    # kwok runs the pack pods: the packed models follow their pack's Deployment to Ready.
    ready = ok.wait_until(
        lambda: (
            (b := _fleet(namespace, "packed"))
            and all(_model(b, m).get("phase") == "Ready" for m in "abcd")
            and b
        ),
        TIMEOUT,
        "the packed models Ready with their packs",
    )
    assert _model(ready, "a")["message"] == "1/1 replicas ready"
    described = ok.kubectl("describe", "modelfleet", "packed", "-n", namespace)
    assert "small-2" in described and "Memory Budget" in described
    selector = "reason=ModelsDoNotFit,involvedObject.name=packed"
    warnings = ok.wait_until(
        lambda: ok.get_json("events", "-n", namespace, f"--field-selector={selector}")["items"],
        30,
        "the Event",
    )
    assert [w["type"] for w in warnings] == ["Warning"] and "e: TooLarge" in warnings[0]["message"]
    # Opting out again: the packs' children go and each model gets its own Deployment back.
    patch = [{"op": "replace", "path": "/spec/placement/pack", "value": "none"}]
    ok.kubectl("patch", "modelfleet", "packed", "-n", namespace, "--type=json", "-p", json.dumps(patch))
    ok.wait_until(
        lambda: not ok.get_json("deployments", "-n", namespace, "-l", "flotilla.dev/component=pack")["items"],
        TIMEOUT,
        "the pack Deployments pruned",
    )
    own = ok.get_json("deployments", "-n", namespace, "-l", "flotilla.dev/component=model")["items"]
    assert sorted(d["metadata"]["name"] for d in own) == [f"packed-{m}" for m in "abcde"]


def test_a_gpu_pack_is_scheduled_onto_the_gpu_node_with_its_fractional_serve_config(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    """ray.serve.llm is rendered, not run (no GPU here): kwok plays the pod on its L4 node."""
    models = [
        {"name": name, "source": {"uri": f"hf://Qwen/{name}"}, "runtime": "vllm", "maxContextLength": 4096,
         "accelerator": {"gpus": 1, "product": manifests.GPU_PRODUCT}, "placement": {"memory": memory}}
        for name, memory in (("qwen-a", "1Gi"), ("qwen-b", "2Gi"))
    ]  # fmt: skip
    doc = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": "gpupack", "namespace": namespace},
        "spec": {"placement": {"pack": "auto"}, "models": models},
    }
    ok.apply_doc(doc)
    ready = ok.wait_until(
        lambda: (
            (b := _fleet(namespace, "gpupack"))
            and all(_model(b, m).get("phase") == "Ready" for m in ("qwen-a", "qwen-b"))
            and b
        ),
        TIMEOUT,
        "both models Ready with their GPU pack",
    )
    assert [(p["name"], p["models"]) for p in ready["status"]["packs"]] == [("auto-1", ["qwen-b", "qwen-a"])]
    pods = ok.get_json("pods", "-n", namespace, "-l", "flotilla.dev/pack=auto-1")["items"]
    assert [p["spec"]["nodeName"] for p in pods] == ["kwok-gpu-0"]
    config = yaml.safe_load(
        ok.get_json("configmap", "gpupack-pack-auto-1", "-n", namespace)["data"]["serve.yaml"]
    )
    fractions = [a["args"]["llm_configs"][0]["placement_group_config"]["bundles"][0]["GPU"]
                 for a in config["applications"]]  # fmt: skip
    assert 0 < sum(fractions) <= 1
