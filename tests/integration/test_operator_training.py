"""Acceptance for the training Job on the real local cluster: the operator counts a task's captured traces
from a real router process (status.traces), creates the task's training Job when the count reaches
`when.traces` (owned by the fleet, labelled with task and version), follows it into status.training, and
reports a Job that finally fails (phase Failed, a Warning Event, the Trained condition) without touching
the serving Deployments or creating the version again. Another `when.traces` later, version 2 runs to the
end and succeeds.

What is real: the apiserver, the Job controller (retries, back-off, BackoffLimitExceeded, Complete), the
scheduler, the garbage-collector's owner references, the operator (as its ServiceAccount), a `flotilla
router` process capturing the answers of the stand-in provider, the EndpointSlice the operator finds the
router by. What is not: the pods. The first Job's pods cannot be scheduled (the sink's claim does not
exist yet, as the scheduler says) and the test evicts each one, as a node drain would: the Job controller
counts each lost pod as a failure. Once the claim exists the second Job's pod lands on a kwok node, which
runs no container and reports it Succeeded: nothing is fine-tuned here (the fine-tune image with torch does
not exist yet; docs/distillation.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import operatorkit as ok
import pytest
import routerpodkit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

FLEET = "tuning"
EVERY = 2
TRAINING_TICK = 10.0  # handlers.TRAINING_SECONDS
JOBS = f"flotilla.dev/fleet={FLEET},flotilla.dev/component=training"


def _fleet(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET, "namespace": namespace},
        "spec": {
            "models": [{"name": "base", "source": {"uri": "file:///models/gemma-3-270m-q4_k_m.gguf"},
                        "runtime": "llamacpp"}],
            "routing": {
                "defaultTask": "chat",
                "tasks": [
                    {"name": "math", "models": ["base"], "fallbacks": [],
                     "distillation": {"capture": {"sample": 1},
                                      "train": {"base": "base", "when": {"traces": EVERY}, "steps": 10}}},
                    {"name": "chat", "models": ["base"], "fallbacks": []},
                ],
            },
            "distillation": {"sink": {"volume": {"claimName": "traces"}}},
        },
    }  # fmt: skip


def _status(namespace: str) -> dict[str, Any]:
    return ok.get_json("modelfleet", FLEET, "-n", namespace).get("status") or {}


def _jobs(namespace: str) -> list[dict[str, Any]]:
    return list(ok.get_json("jobs", "-n", namespace, "-l", JOBS)["items"])


def _training(namespace: str) -> dict[str, Any]:
    entries = _status(namespace).get("training") or []
    return dict(entries[0]) if entries else {}


def _captured(namespace: str, count: int) -> None:
    def counted() -> bool:
        traces = _status(namespace).get("traces") or []
        return bool(traces) and traces[0]["captured"] == count

    ok.wait_until(counted, 60, f"status.traces counting {count} captured math answers")


def _condition(namespace: str, kind: str) -> dict[str, Any]:
    return next((c for c in _status(namespace).get("conditions") or [] if c["type"] == kind), {})


def _trained(namespace: str, reason: str) -> dict[str, Any] | None:
    found = _condition(namespace, "Trained")
    return found if found.get("reason") == reason else None


def _serving(namespace: str) -> dict[str, tuple[int, str]]:
    """Each Deployment's generation and spec, to show a training Job leaves them alone."""
    found = ok.get_json("deployments", "-n", namespace)["items"]
    return {
        d["metadata"]["name"]: (d["metadata"]["generation"], json.dumps(d["spec"], sort_keys=True))
        for d in found
    }


def _ask(router: routerpodkit.LoopbackRouter, count: int) -> None:
    with httpx.Client(base_url=router.url, timeout=30) as client:
        for n in range(count):
            body = {"messages": [{"role": "user", "content": f"what is {n} + 2?"}], "max_tokens": 16}
            answer = client.post("/v1/chat/completions", json=body, headers={"x-flotilla-task": "math"})
            assert answer.status_code == 200, answer.text


def _pending_pod(namespace: str, job: str, gone: set[str]) -> dict[str, Any] | None:
    """The Job's pod not deleted yet, once the scheduler has said why it cannot place it."""
    for pod in ok.get_json("pods", "-n", namespace, "-l", f"job-name={job}")["items"]:
        if pod["metadata"]["name"] in gone or pod["metadata"].get("deletionTimestamp"):
            continue
        for cond in pod["status"].get("conditions") or []:
            if (cond["type"], cond["status"], cond.get("reason")) == (
                "PodScheduled",
                "False",
                "Unschedulable",
            ):
                return dict(pod)
    return None


def test_the_training_job_starts_at_when_traces_fails_for_real_and_the_next_version_succeeds(
    flotilla_crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path, cloud: str
) -> None:
    operator = routerpodkit.operator_reaching_routers(operator_kubeconfig, tmp_path, namespace)
    ok.apply_doc(_fleet(namespace))
    operator.start()
    router = None
    volume = None
    try:
        config = routerpodkit.rendered_config(namespace, FLEET, lambda model: cloud)
        config["capture"]["directory"]["path"] = str(tmp_path / "store")  # the volume, on loopback
        config["capture"]["spoolDir"] = str(tmp_path / "spool")
        router = routerpodkit.LoopbackRouter(namespace, FLEET, config, tmp_path)

        # Below the threshold: counted, no Job, the condition says what it waits for.
        _ask(router, EVERY - 1)
        _captured(namespace, EVERY - 1)
        time.sleep(TRAINING_TICK + 2)  # at least one training pass saw the count
        assert _jobs(namespace) == []
        assert _training(namespace) == {}
        waiting = _condition(namespace, "Trained")
        assert (waiting["status"], waiting["reason"]) == ("False", "WaitingForTraces")
        assert f"starts at {EVERY} captured traces" in waiting["message"]
        serving = _serving(namespace)
        assert serving, "the fleet's Deployments"

        # At the threshold: version 1's Job, owned by the fleet, labelled with the task and version.
        _ask(router, 1)
        _captured(namespace, EVERY)
        (job,) = ok.wait_until(lambda: _jobs(namespace) or None, 30, "the training Job")
        meta = job["metadata"]
        fleet_uid = ok.get_json("modelfleet", FLEET, "-n", namespace)["metadata"]["uid"]
        assert meta["name"] == f"{FLEET}-train-math-v1"
        assert (
            meta["labels"] | {} == meta["labels"]
            and {
                "app.kubernetes.io/managed-by": "flotilla",
                "flotilla.dev/fleet": FLEET,
                "flotilla.dev/component": "training",
                "flotilla.dev/task": "math",
                "flotilla.dev/adapter-version": "1",
            }.items()
            <= meta["labels"].items()
        )
        assert [(o["kind"], o["name"], o["uid"], o["controller"]) for o in meta["ownerReferences"]] == [
            ("ModelFleet", FLEET, fleet_uid, True)
        ]
        assert meta["annotations"]["flotilla.dev/traces"] == str(EVERY)
        assert meta["annotations"]["flotilla.dev/adapter"] == f"/sink/adapters/{FLEET}/math/v1/"
        assert job["spec"]["backoffLimit"] == 2
        entry = ok.wait_until(lambda: _training(namespace) or None, 30, "status.training")
        assert (entry["task"], entry["version"], entry["job"]) == ("math", 1, meta["name"])
        assert entry["phase"] in ("Pending", "Running") and entry["traces"] == EVERY
        assert entry["nextTraces"] == 2 * EVERY
        events = ok.get_json("events", "-n", namespace)["items"]
        assert any(e["reason"] == "TrainingStarted" and meta["name"] in e["message"] for e in events)

        # Its pods cannot be scheduled (no claim "traces" yet): each is evicted, the Job controller counts
        # it failed, backs off, retries, and gives up after backoffLimit 2.
        evicted: set[str] = set()
        for attempt in range(3):
            pod = ok.wait_until(lambda: _pending_pod(namespace, meta["name"], evicted), 90,
                                f"attempt {attempt + 1}'s pod, unschedulable")  # fmt: skip
            message = next(c["message"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
            assert "traces" in message, message  # the scheduler names the missing claim
            ok.kubectl("delete", "pod", pod["metadata"]["name"], "-n", namespace, "--wait=false")
            evicted.add(pod["metadata"]["name"])

        def failed() -> dict[str, Any] | None:
            found = _training(namespace)
            return found if found.get("phase") == "Failed" else None

        entry = ok.wait_until(failed, 90, "status.training Failed")
        assert entry["version"] == 1 and entry["attempts"] == 3
        assert entry["message"].startswith("BackoffLimitExceeded"), entry["message"]
        assert entry["completionTime"]
        condition = ok.wait_until(
            lambda: _trained(namespace, "JobFailed"), 30, "Trained reporting the failure"
        )
        assert condition["status"] == "False" and "BackoffLimitExceeded" in condition["message"]
        warnings = [
            e for e in ok.get_json("events", "-n", namespace)["items"] if e["reason"] == "TrainingFailed"
        ]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
        assert "BackoffLimitExceeded" in warnings[0]["message"]
        assert f"next version starts at {2 * EVERY} captured traces" in warnings[0]["message"]
        table = ok.kubectl("get", "mf", FLEET, "-n", namespace)
        header, row = table.splitlines()[:2]
        assert "TRAINING" in header and "math=v1 Failed" in row
        assert _serving(namespace) == serving  # serving untouched

        # Failed is final for version 1: not created again, whatever the passes.
        time.sleep(TRAINING_TICK + 2)
        assert [j["metadata"]["name"] for j in _jobs(namespace)] == [meta["name"]]
        assert (
            len(
                [
                    e
                    for e in ok.get_json("events", "-n", namespace)["items"]
                    if e["reason"] == "TrainingFailed"
                ]
            )
            == 1
        )

        # The claim appears; another when.traces later, version 2 runs on a (kwok) node and succeeds.
        host_dir = tmp_path / "sink"
        host_dir.mkdir()
        volume = routerpodkit.sink_claim(namespace, host_dir)
        _ask(router, EVERY)
        _captured(namespace, 2 * EVERY)

        def succeeded() -> dict[str, Any] | None:
            found = _training(namespace)
            return found if (found.get("version"), found.get("phase")) == (2, "Succeeded") else None

        entry = ok.wait_until(succeeded, 90, "version 2 Succeeded")
        assert entry["job"] == f"{FLEET}-train-math-v2" and entry["traces"] == 2 * EVERY
        assert sorted(j["metadata"]["name"] for j in _jobs(namespace)) == [meta["name"], entry["job"]]
        condition = ok.wait_until(lambda: _trained(namespace, "JobSucceeded"), 30, "Trained True")
        assert condition["reason"] == "JobSucceeded"
        reasons = [e["reason"] for e in ok.get_json("events", "-n", namespace)["items"]]
        assert reasons.count("TrainingStarted") == 2 and reasons.count("TrainingSucceeded") == 1
        assert _serving(namespace) == serving
        assert ok.log_errors(operator.log()) == []
    finally:
        if router is not None:
            router.stop()
        operator.stop()
        if volume is not None:
            ok.kubectl("delete", "persistentvolume", volume, "--wait=false", check=False)
