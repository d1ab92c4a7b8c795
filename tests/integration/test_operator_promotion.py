"""Acceptance for shadow evaluation and promotion on the real local cluster: the operator renders a task's
candidate as a shadow, sums the router's shadow counters, and when the spec's rule fires writes
status.candidates, posts CandidatePromoted / CandidateRolledBack, shows the CANDIDATES column of
`kubectl get mf`, and re-renders the router config with the promoted candidate first (the spec untouched).
The math task also captures its answers: status.traces counts them from the same router scrape.

What is real: the apiserver, the operator (as its ServiceAccount), a `flotilla router` process running the
rendered config, the stand-in providers playing the models (both knowing the math answer key, so the
candidate agrees), the EndpointSlice the operator finds the router by. What is not: the pods (kwok runs no
process; the router runs on loopback, published under a host name the operator maps to 127.0.0.1).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import free_port

from flotilla.router.classifying import datasets

pytestmark = pytest.mark.cluster

FLEET = "shadow"
KEY = datasets.shared_data() / "math-answers.jsonl"  # the knowing stand-in answers its prompts


def _model(name: str) -> dict[str, Any]:
    return {"name": name, "source": {"uri": "hf://unsloth/gemma-3-270m-it-GGUF"}, "runtime": "llamacpp",
            "quantization": "Q4_K_M"}  # fmt: skip


def _fleet(namespace: str) -> dict[str, Any]:
    """math: base serves, tuned shadows (promoted after 3 agreeing mirrors); chat: base serves, broken
    shadows (its server is down: rolled back after 2 errors)."""
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET, "namespace": namespace},
        "spec": {
            "models": [_model("base"), _model("tuned"), _model("broken")],
            "routing": {
                "defaultTask": "chat",
                "tasks": [
                    {"name": "math", "models": ["base"], "fallbacks": [],
                     "distillation": {"capture": {"sample": 1},
                                      "shadow": {"model": "tuned", "share": 1, "requests": 3,
                                                 "promoteAt": 0.6}}},
                    {"name": "chat", "models": ["base"], "fallbacks": [],
                     "distillation": {"shadow": {"model": "broken", "share": 1, "requests": 2}}},
                ],
            },
            "distillation": {"sink": {"volume": {"claimName": "traces"}}},
        },
    }  # fmt: skip


def _router_tasks(namespace: str) -> dict[str, dict[str, Any]]:
    done = ok.kubectl_try("get", "configmap", f"{FLEET}-router", "-n", namespace, "-o", "json")
    if done.returncode != 0:
        return {}
    config = yaml.safe_load(json.loads(done.stdout)["data"]["router.yaml"])
    return {t["name"]: t for t in config["tasks"]}


def _candidates(namespace: str) -> dict[str, dict[str, Any]]:
    status = ok.get_json("modelfleet", FLEET, "-n", namespace).get("status") or {}
    return {c["task"]: c for c in status.get("candidates") or []}


def test_a_candidate_is_promoted_and_another_rolled_back_by_the_rule(
    flotilla_crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path, knowing_standin: str
) -> None:
    operator = routerpodkit.operator_reaching_routers(operator_kubeconfig, tmp_path, namespace)
    ok.apply_doc(_fleet(namespace))
    operator.start()
    router = None
    try:
        tasks = ok.wait_until(lambda: _router_tasks(namespace) or None, 60, "the router ConfigMap")
        assert tasks["math"]["models"] == ["base"] and tasks["math"]["shadow"]["model"] == "tuned"
        assert tasks["chat"]["shadow"]["model"] == "broken"

        nowhere = f"http://127.0.0.1:{free_port()}"
        config = routerpodkit.rendered_config(
            namespace, FLEET, lambda model: nowhere if model == "broken" else knowing_standin
        )
        config["capture"]["directory"]["path"] = str(tmp_path / "store")  # the volume, on loopback
        config["capture"]["spoolDir"] = str(tmp_path / "spool")
        router = routerpodkit.LoopbackRouter(namespace, FLEET, config, tmp_path)
        rows = datasets.read_jsonl(KEY)[:3]
        with httpx.Client(base_url=router.url, timeout=30) as client:
            for row in rows:
                body = {"messages": [{"role": "user", "content": row["prompt"]}], "max_tokens": 16}
                answer = client.post("/v1/chat/completions", json=body, headers={"x-flotilla-task": "math"})
                assert answer.status_code == 200 and answer.headers["x-flotilla-model"] == "base"
                assert f"#### {row['answer']}" in answer.json()["choices"][0]["message"]["content"]
            for row in rows[:2]:
                body = {"messages": [{"role": "user", "content": row["prompt"]}], "max_tokens": 16}
                answer = client.post("/v1/chat/completions", json=body, headers={"x-flotilla-task": "chat"})
                assert answer.status_code == 200 and answer.headers["x-flotilla-model"] == "base"

        def decided() -> dict[str, dict[str, Any]] | None:
            found = _candidates(namespace)
            states = {task: c["state"] for task, c in found.items()}
            return found if states == {"math": "Promoted", "chat": "RolledBack"} else None

        candidates = ok.wait_until(decided, 60, "both candidates decided")
        math, chat = candidates["math"], candidates["chat"]
        assert (math["model"], math["scored"], math["agreed"], math["errors"], math["agreement"]) == (
            "tuned",
            3,
            3,
            0,
            1.0,
        )
        assert (chat["model"], chat["scored"], chat["agreed"], chat["errors"]) == ("broken", 2, 0, 2)
        assert math["lastTransitionTime"] and [c["replica"] for c in math["counted"]]

        # status.traces: the 3 captured math answers, summed from the router's counter (chat captures none)
        def counted() -> list[dict[str, Any]] | None:
            traces = (ok.get_json("modelfleet", FLEET, "-n", namespace).get("status") or {}).get("traces")
            return traces if traces and traces[0]["captured"] == 3 else None

        (traces,) = ok.wait_until(counted, 60, "status.traces counting the captured math answers")
        assert traces["task"] == "math" and traces["counted"][0]["replica"].startswith(f"{FLEET}-router-")

        # kubectl get mf shows them
        table = ok.kubectl("get", "mf", FLEET, "-n", namespace)
        header, row = table.splitlines()[:2]
        assert "CANDIDATES" in header
        assert "math:tuned=Promoted 3/3" in row and "chat:broken=RolledBack 0/2" in row

        # Events, one per decision
        events = ok.get_json("events", "-n", namespace)["items"]
        reasons = {e["reason"]: e["message"] for e in events if e["reason"].startswith("Candidate")}
        assert "candidate tuned promoted" in reasons["CandidatePromoted"]
        assert "agreement 1.00 (3/3 scored" in reasons["CandidatePromoted"]
        assert "candidate broken rolled back" in reasons["CandidateRolledBack"]

        # The routing follows: tuned first for math, no more mirrors; the user's spec is untouched.
        def rerendered() -> dict[str, dict[str, Any]] | None:
            tasks = _router_tasks(namespace)
            return tasks if tasks["math"]["models"] == ["tuned", "base"] else None

        tasks = ok.wait_until(rerendered, 30, "the router config with the promoted candidate first")
        assert tasks["math"]["shadow"] is None
        assert tasks["chat"]["models"] == ["base"] and tasks["chat"]["shadow"] is None
        spec = ok.get_json("modelfleet", FLEET, "-n", namespace)["spec"]
        assert spec["routing"]["tasks"][0]["models"] == ["base"]

        # The user makes it permanent: tuned first in the spec, no more shadows. The status forgets them.
        for task in spec["routing"]["tasks"]:
            task.pop("distillation")
        spec["routing"]["tasks"][0]["models"] = ["tuned", "base"]
        ok.kubectl("patch", "modelfleet", FLEET, "-n", namespace, "--type=merge", "-p",
                   json.dumps({"spec": {"routing": spec["routing"]}}))  # fmt: skip
        ok.wait_until(lambda: not _candidates(namespace) or None, 30, "status.candidates cleared")
        status = ok.get_json("modelfleet", FLEET, "-n", namespace)["status"]
        assert "candidatesSummary" not in status
        assert _router_tasks(namespace)["math"]["models"] == ["tuned", "base"]
        assert ok.log_errors(operator.log()) == []
    finally:
        if router is not None:
            router.stop()
        operator.stop()
