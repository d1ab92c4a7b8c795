"""Status: phases from Deployments, conditions, the MODELS column, transitions and their Events."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from flotilla.reconcile import statuses, vetting
from flotilla.reconcile.statuses import DeploymentView

NOW, LATER = "2026-11-23T15:00:00Z", "2026-11-23T15:05:00Z"


def view(model: str | None, replicas: int = 1, ready: int = 1, **kw: Any) -> DeploymentView:
    component = "router" if model is None else "model"
    name = "f-router" if model is None else f"f-{model}"
    fields: dict[str, Any] = {"updated": replicas, "generation": 1, "observed_generation": 1, **kw}
    return DeploymentView(name, component, model, replicas, ready, **fields)


def observed(*views: DeploymentView, models: tuple[str, ...] = ("a", "b"), **kw: Any) -> statuses.Observed:
    fields: dict[str, Any] = {
        "generation": 3,
        "applied_generation": 3,
        "endpoint": "http://f-router.ai.svc:8080/v1",
    }
    fields.update(kw)
    return statuses.Observed(models=models, deployments=views, **fields)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


@pytest.mark.parametrize(
    ("deployment", "phase"),
    [
        (view("a", replicas=1, ready=1), "Ready"),
        (view("a", replicas=2, ready=1), "Progressing"),
        (view("a", replicas=0, ready=0), "ScaledToZero"),
        (
            view("a", replicas=1, ready=1, generation=2, observed_generation=1),
            "Progressing",
        ),  # rollout pending
        (view("a", replicas=2, ready=2, updated=1), "Progressing"),  # old pods still serving
        (view("a", replicas=1, ready=0, failure="ProgressDeadlineExceeded: stuck"), "Degraded"),
    ],
)
def test_phase(deployment: DeploymentView, phase: str) -> None:
    assert deployment.phase()[0] == phase


def test_view_from_body_reads_failures_and_defaults() -> None:
    body = {
        "metadata": {"name": "f-a", "generation": 4, "labels": {"flotilla.dev/component": "model",
                                                                   "flotilla.dev/model": "a"}},
        "spec": {},
        "status": {
            "observedGeneration": 4, "readyReplicas": 1, "updatedReplicas": 1,
            "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                            "message": "quota exceeded"}],
        },
    }  # fmt: skip
    v = DeploymentView.from_body(body)
    assert (v.model, v.component, v.replicas, v.ready, v.generation) == ("a", "model", 1, 1, 4)
    assert v.phase() == ("Degraded", "FailedCreate: quota exceeded")


def test_all_ready() -> None:
    status = statuses.compute(observed(view("a"), view("b", replicas=2, ready=2), view(None)), None, NOW)
    assert conditions(status) == {
        "Ready": ("True", "FleetReady"),
        "ModelsReady": ("True", "AllModelsReady"),
        "RouterReady": ("True", "RouterAvailable"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["modelsReady"] == "2/2"
    assert status["observedGeneration"] == 3
    assert status["endpoint"] == "http://f-router.ai.svc:8080/v1"
    assert status["models"][1] == {
        "name": "b",
        "readyReplicas": 2,
        "desiredReplicas": 2,
        "phase": "Ready",
        "message": "2/2 replicas ready",
    }


def test_packed_models_follow_their_pack_deployment() -> None:
    body = {
        "metadata": {"name": "f-pack-auto-1", "generation": 2,
                     "labels": {"flotilla.dev/component": "pack", "flotilla.dev/pack": "auto-1"},
                     "annotations": {"flotilla.dev/pack-models": "b,c"}},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 2},
    }  # fmt: skip
    pack = DeploymentView.from_body(body)
    assert (pack.component, pack.model, pack.packed) == ("pack", None, ("b", "c"))
    status = statuses.compute(observed(view("a"), pack, view(None), models=("a", "b", "c")), None, NOW)
    by_name = {m["name"]: m for m in status["models"]}
    assert by_name["a"]["phase"] == "Ready"
    for name in ("b", "c"):
        assert (by_name[name]["phase"], by_name[name]["readyReplicas"]) == ("Progressing", 1)
    assert status["modelsReady"] == "1/3"
    ready = statuses.compute(
        observed(view("a"), dataclasses.replace(pack, ready=2), view(None), models=("a", "b", "c")), None, NOW
    )
    assert ready["modelsReady"] == "3/3" and conditions(ready)["Ready"] == ("True", "FleetReady")


def test_a_pack_pod_the_scheduler_cannot_place_is_named_in_each_of_its_models() -> None:
    pack = DeploymentView(
        "f-pack-auto-1", "pack", None, 1, 0, 0, 1, 1, packed=("a", "b"), pack="auto-1"
    )  # fmt: skip
    stuck = statuses.PodTrouble(
        "pack", "auto-1", statuses.UNSCHEDULABLE + "0/2 nodes are available: 2 Insufficient memory."
    )
    status = statuses.compute(observed(pack, view(None), pod_troubles=[stuck]), None, NOW)
    for model in status["models"]:
        assert model["message"].endswith(
            "pods unschedulable: 0/2 nodes are available: 2 Insufficient memory."
        )
    assert conditions(status)["ModelsReady"] == ("False", "ModelsUnschedulable")


def test_missing_deployment_is_pending_and_counts_against_models_ready() -> None:
    status = statuses.compute(observed(view("a"), view(None)), None, NOW)
    assert status["modelsReady"] == "1/2"
    assert status["models"][1]["phase"] == "Pending"
    assert conditions(status)["Ready"] == ("False", "ModelsNotReady")
    assert "b: Pending" in next(c["message"] for c in status["conditions"] if c["type"] == "ModelsReady")


def test_router_not_ready() -> None:
    status = statuses.compute(observed(view("a"), view("b"), view(None, ready=0)), None, NOW)
    assert conditions(status)["RouterReady"] == ("False", "RouterProgressing")
    assert conditions(status)["Ready"] == ("False", "RouterNotReady")


def test_unapplied_generation_is_reconciling() -> None:
    status = statuses.compute(observed(view("a"), view("b"), view(None), applied_generation=2), None, NOW)
    assert conditions(status)["Ready"] == ("False", "Reconciling")
    assert status["observedGeneration"] == 2


def test_invalid_spec_is_degraded_with_its_message() -> None:
    status = statuses.compute(observed(spec_error="bad things", endpoint=None), None, NOW)
    assert conditions(status)["Degraded"] == ("True", "InvalidSpec")
    assert conditions(status)["Ready"] == ("False", "InvalidSpec")
    assert next(c["message"] for c in status["conditions"] if c["type"] == "Degraded") == "bad things"
    assert "endpoint" not in status


def test_scaled_to_zero_counts_as_ready() -> None:
    status = statuses.compute(observed(view("a", replicas=0, ready=0), view("b"), view(None)), None, NOW)
    assert status["modelsReady"] == "2/2"
    assert conditions(status)["Ready"] == ("True", "FleetReady")


def test_transition_time_kept_while_status_holds() -> None:
    first = statuses.compute(observed(view("a"), view("b"), view(None)), None, NOW)
    again = statuses.compute(observed(view("a"), view("b"), view(None)), first, LATER)
    assert all(c["lastTransitionTime"] == NOW for c in again["conditions"])
    broken = statuses.compute(observed(view("a", ready=0), view("b"), view(None)), again, LATER)
    times = {c["type"]: c["lastTransitionTime"] for c in broken["conditions"]}
    assert times == {"Ready": LATER, "ModelsReady": LATER, "RouterReady": NOW, "Degraded": NOW}


def test_transitions() -> None:
    pending = statuses.compute(observed(view("a", ready=0), view("b"), view(None)), None, NOW)
    ready = statuses.compute(observed(view("a"), view("b"), view(None)), pending, NOW)
    failing = statuses.compute(
        observed(view("a", failure="ReplicaFailure: x"), view("b"), view(None)), ready, NOW
    )
    recovered = statuses.compute(observed(view("a"), view("b"), view(None)), failing, NOW)
    assert statuses.transitions(None, pending) == []
    assert [n.reason for n in statuses.transitions(pending, ready)] == ["FleetReady"]
    assert [
        n.reason for n in statuses.transitions(ready, ready)
    ] == []  # a restart re-reading status: no repeat
    assert [(n.type, n.reason) for n in statuses.transitions(ready, failing)] == [
        ("Warning", "FleetNotReady"),
        ("Warning", "ModelDegraded"),
    ]
    assert [n.reason for n in statuses.transitions(failing, recovered)] == ["FleetReady", "ModelRecovered"]


def test_endpoint_from_router_service() -> None:
    router = {
        "kind": "Service",
        "metadata": {"name": "f-router", "namespace": "ai", "labels": {"flotilla.dev/component": "router"}},
        "spec": {"ports": [{"port": 8080}]},
    }
    model = {**router, "metadata": {**router["metadata"], "labels": {"flotilla.dev/component": "model"}}}
    assert statuses.endpoint([model, router]) == "http://f-router.ai.svc:8080/v1"
    assert statuses.endpoint([model]) is None


def test_model_error_makes_the_model_degraded_with_its_message() -> None:
    status = statuses.compute(
        observed(view("a"), view("b"), view(None), model_errors={"b": "KEDA is not installed"}), None, NOW
    )
    models = {m["name"]: (m["phase"], m["message"]) for m in status["models"]}
    assert models == {"a": ("Ready", "1/1 replicas ready"), "b": ("Degraded", "KEDA is not installed")}
    assert conditions(status)["Degraded"] == ("True", "ChildDegraded")
    assert conditions(status)["Ready"][0] == "False"


GOOD = vetting.Accepted("https://a.example/c.npz", "ab" * 32, "v1", ("general", "legal"))


def test_a_custom_classifier_is_reported_with_its_condition_and_status() -> None:
    ready = (view("a"), view("b"), view(None))
    accepted = statuses.compute(observed(*ready, classifier=vetting.Verdict(True, GOOD)), None, NOW)
    assert conditions(accepted)["ClassifierReady"] == ("True", "ClassifierAccepted")
    assert accepted["classifier"] == GOOD.to_status()
    assert conditions(accepted)["Ready"] == ("True", "FleetReady")  # a classifier never blocks serving
    rejected = statuses.compute(
        observed(*ready, classifier=vetting.Verdict(True, GOOD, "x.npz is not a valid classifier")),
        accepted,
        LATER,
    )
    assert conditions(rejected)["ClassifierReady"] == ("False", "ClassifierRejected")
    (message,) = [c["message"] for c in rejected["conditions"] if c["type"] == "ClassifierReady"]
    assert (
        message
        == "x.npz is not a valid classifier; the routers keep classifier v1 from https://a.example/c.npz"
    )
    assert rejected["classifier"] == GOOD.to_status()  # still the one the routers use
    assert statuses.transitions(accepted, rejected) == [
        statuses.Notice("Warning", "ClassifierRejected", message)
    ]
    assert statuses.transitions(rejected, rejected) == []  # the same reason is posted once
    first = statuses.compute(observed(*ready, classifier=vetting.Verdict(True, None, "HTTP 404")), None, NOW)
    assert "the routers keep the packaged classifier" in str(first["conditions"])
    assert "classifier" not in first


def test_classifier_status_is_kept_until_vetted_and_dropped_with_the_spec() -> None:
    ready = (view("a"), view("b"), view(None))
    accepted = statuses.compute(observed(*ready, classifier=vetting.Verdict(True, GOOD)), None, NOW)
    restarted = statuses.compute(observed(*ready, classifier=None), accepted, LATER)  # a new operator process
    assert restarted["classifier"] == accepted["classifier"]
    assert [c for c in restarted["conditions"] if c["type"] == "ClassifierReady"] == [
        c for c in accepted["conditions"] if c["type"] == "ClassifierReady"
    ]
    assert statuses.transitions(accepted, restarted) == []
    dropped = statuses.compute(observed(*ready, classifier=vetting.PACKAGED), accepted, LATER)
    assert "classifier" not in dropped
    assert "ClassifierReady" not in conditions(dropped)


def test_name_conflict_is_degraded_and_posts_one_warning_per_conflict() -> None:
    taken = "Deployment a-b-router exists and is controlled by ModelFleet a-b (uid 42)"
    ready = statuses.compute(observed(view("a"), view("b"), view(None)), None, NOW)
    refused = statuses.compute(observed(view("a"), view("b"), view(None), name_conflict=taken), ready, LATER)
    assert conditions(refused)["Degraded"] == ("True", "NameConflict")
    assert conditions(refused)["Ready"] == ("False", "NameConflict")
    assert next(c["message"] for c in refused["conditions"] if c["type"] == "Ready") == taken
    notices = statuses.transitions(ready, refused)
    assert ("Warning", "NameConflict", f"nothing applied: {taken}") in [
        (n.type, n.reason, n.message) for n in notices
    ]
    again = statuses.compute(observed(name_conflict=taken), refused, LATER)
    assert statuses.transitions(refused, again) == []  # a retry meeting the same conflict: no new Event
    other = statuses.compute(observed(name_conflict="ConfigMap a-router exists ..."), again, LATER)
    assert [n.reason for n in statuses.transitions(again, other)] == ["NameConflict"]
    invalid = statuses.compute(observed(spec_error="bad", name_conflict=taken), None, NOW)
    assert conditions(invalid)["Degraded"] == ("True", "InvalidSpec")  # the spec error comes first
