"""Acceptance for the step from a trained version to the task's first model, on the real local cluster:
once a training Job succeeded, the operator serves its adapter as the model `<base>-<task>-v<N>` (its own
Deployment, the adapter read from the sink) and makes it the task's shadow candidate as `train.shadow`
says; the routers' scores promote it to the task's first model; the next version then shadows behind it
while it keeps serving first. The spec is never edited.

What is real: the apiserver, the Job controller (the Jobs run to Complete on a kwok node), the operator (as
its ServiceAccount), a `flotilla router` process running the rendered config (restarted with each new
config, as a rolled-out router pod would be), the stand-in answering from the math answer key for every
model (so the candidate agrees), the EndpointSlice the operator finds the router by. What is not: the pods
(kwok runs no container: no adapter is trained or loaded here; tests/distilling does that with llama.cpp).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import operatorkit as ok
import pytest
import routerpodkit
import yaml
from conftest import MATH_ANSWERS

from flotilla.router.classifying import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

FLEET = "distil"
EVERY = 3  # when.traces
MIRRORS = 2  # train.shadow.requests: fewer than EVERY, so v2 cannot start before v1 is decided
V1, V2 = "base-math-v1", "base-math-v2"


def _fleet(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET, "namespace": namespace},
        "spec": {
            "models": [{"name": "base", "source": {"uri": "file:///models/gemma-3-270m-q4_k_m.gguf"},
                        "runtime": "llamacpp", "args": ["--no-jinja", "--chat-template", "gemma"]}],
            "routing": {
                "defaultTask": "chat",
                "tasks": [
                    {"name": "math", "models": ["base"], "fallbacks": [],
                     "distillation": {"capture": {"sample": 1},
                                      "train": {"base": "base", "when": {"traces": EVERY}, "steps": 10,
                                                "shadow": {"share": 1, "requests": MIRRORS,
                                                           "promoteAt": 0.5}}}},
                    {"name": "chat", "models": ["base"], "fallbacks": []},
                ],
            },
            "distillation": {"sink": {"volume": {"claimName": "traces"}}},
        },
    }  # fmt: skip


def _fleet_json(namespace: str) -> dict[str, Any]:
    return ok.get_json("modelfleet", FLEET, "-n", namespace)


def _math_route(namespace: str) -> dict[str, Any]:
    done = ok.kubectl_try("get", "configmap", f"{FLEET}-router", "-n", namespace, "-o", "json")
    if done.returncode != 0:
        return {}
    config = yaml.safe_load(json.loads(done.stdout)["data"]["router.yaml"])
    return next(dict(t) for t in config["tasks"] if t["name"] == "math")


def _route_is(namespace: str, models: list[str], shadow: str | None) -> dict[str, Any] | None:
    route = _math_route(namespace)
    found = (route.get("models"), (route.get("shadow") or {}).get("model"))
    return route if found == (models, shadow) else None


def _succeeded(namespace: str, version: int) -> dict[str, Any] | None:
    entries = (_fleet_json(namespace).get("status") or {}).get("training") or []
    entry = entries[0] if entries else {}
    return dict(entry) if (entry.get("version"), entry.get("phase")) == (version, "Succeeded") else None


def _candidates(namespace: str) -> dict[str, str]:
    status = _fleet_json(namespace).get("status") or {}
    return {c["model"]: c["state"] for c in status.get("candidates") or []}


def _deployment(namespace: str, model: str) -> dict[str, Any] | None:
    found = ok.kubectl_try("get", "deployment", f"{FLEET}-{model}", "-n", namespace, "-o", "json")
    return json.loads(found.stdout) if found.returncode == 0 else None


def _ask(router: routerpodkit.LoopbackRouter, rows: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=router.url, timeout=30) as client:
        for row in rows:
            body = {"messages": [{"role": "user", "content": row["prompt"]}], "max_tokens": 16}
            answer = client.post("/v1/chat/completions", json=body, headers={"x-flotilla-task": "math"})
            assert answer.status_code == 200, answer.text
            assert f"#### {row['answer']}" in answer.json()["choices"][0]["message"]["content"]


def _router(namespace: str, upstream: str, tmp: Path) -> routerpodkit.LoopbackRouter:
    """A router on the config the operator rendered last (each model answered by ``upstream``)."""
    tmp.mkdir()
    config = routerpodkit.rendered_config(namespace, FLEET, lambda model: upstream)
    config["capture"]["directory"]["path"] = str(tmp.parent / "store")  # the sink, on loopback
    config["capture"]["spoolDir"] = str(tmp / "spool")
    return routerpodkit.LoopbackRouter(namespace, FLEET, config, tmp)


def test_a_trained_version_is_shadowed_promoted_and_the_next_one_shadows_behind_it(
    flotilla_crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path, knowing_standin: str
) -> None:
    rows = datasets.read_jsonl(MATH_ANSWERS)[: 2 * EVERY]
    operator = routerpodkit.operator_reaching_routers(operator_kubeconfig, tmp_path, namespace)
    (tmp_path / "sink").mkdir()
    volume = routerpodkit.sink_claim(namespace, tmp_path / "sink")
    ok.apply_doc(_fleet(namespace))
    operator.start()
    router = None
    try:
        # Traces reach when.traces: version 1 is trained (the Job completes on a kwok node).
        router = _router(namespace, knowing_standin, tmp_path / "first")
        assert _math_route(namespace)["shadow"] is None  # nothing trained yet: nothing to evaluate
        _ask(router, rows[:EVERY])
        ok.wait_until(lambda: _succeeded(namespace, 1), 120, "version 1 Succeeded")

        # The operator serves it: a Deployment of the base with the adapter, mirrored as the candidate.
        route = ok.wait_until(lambda: _route_is(namespace, ["base"], V1), 60, "v1 as math's candidate")
        assert (route["shadow"]["share"], route["shadow"]["score"]) == (1, "exact-final-answer")
        deployment = ok.wait_until(lambda: _deployment(namespace, V1), 30, "the v1 Deployment")
        pod = deployment["spec"]["template"]["spec"]
        args = pod["containers"][0]["args"]
        assert args[args.index("--lora") + 1].endswith(f"/adapters/{FLEET}/math/v1/adapter.gguf")
        assert {"--no-jinja", "gemma"} <= set(args)  # the base's args: the template the adapter learnt
        assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "traces" for v in pod["volumes"])
        spec = _fleet_json(namespace)["spec"]
        assert [m["name"] for m in spec["models"]] == ["base"]  # the user's spec is untouched

        # The router rolls out with it; its mirrors agree: v1 is promoted to math's first model.
        router.stop()
        router = _router(namespace, knowing_standin, tmp_path / "second")
        _ask(router, rows[EVERY : EVERY + MIRRORS])
        ok.wait_until(lambda: _candidates(namespace) == {V1: "Promoted"} or None, 60, "v1 promoted")
        ok.wait_until(lambda: _route_is(namespace, [V1, "base"], None), 60, "v1 first for math")
        events = ok.get_json("events", "-n", namespace)["items"]
        assert any(e["reason"] == "CandidatePromoted" and V1 in e["message"] for e in events)

        # Another when.traces later, version 2: it shadows while v1 keeps serving first.
        _ask(router, rows[EVERY + MIRRORS : 2 * EVERY])
        ok.wait_until(lambda: _succeeded(namespace, 2), 120, "version 2 Succeeded")
        ok.wait_until(lambda: _route_is(namespace, [V1, "base"], V2), 60, "v2 shadowing behind v1")
        ok.wait_until(
            lambda: _candidates(namespace) == {V1: "Promoted", V2: "Shadowing"} or None, 60,
            "status.candidates: v1 promoted, v2 shadowing",
        )  # fmt: skip
        assert _deployment(namespace, V1) and _deployment(namespace, V2)
        row = ok.kubectl("get", "mf", FLEET, "-n", namespace).splitlines()[1]
        assert f"math:{V1}=Promoted" in row and f"math:{V2}=Shadowing" in row
        assert ok.log_errors(operator.log()) == []
    finally:
        if router is not None:
            router.stop()
        operator.stop()
        ok.kubectl("delete", "persistentvolume", volume, "--wait=false", check=False)
