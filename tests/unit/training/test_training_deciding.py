"""The training rule: version 1 at when.traces, version N+1 after version N finished and another when.traces
were captured, never a version twice; status.training from the Jobs as the Job controller reports them."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.api.fleet import ModelFleet
from flotilla.api.status import TrainingStatus
from flotilla.render import training
from flotilla.training import deciding, launching
from flotilla.training.deciding import JobView

NOW = "2026-12-07T08:00:00Z"
EVERY = 100


def _fleet(
    captured: int | None,
    training_status: list[dict[str, Any]] | None = None,
    train: bool = True,
    candidates: list[dict[str, Any]] | None = None,
) -> ModelFleet:
    distillation: dict[str, Any] = {"capture": {"sample": 1}}
    if train:
        distillation["train"] = {"base": "base", "when": {"traces": EVERY}}
    status: dict[str, Any] = {}
    if captured is not None:
        status["traces"] = [{"task": "math", "captured": captured}]
    if training_status is not None:
        status["training"] = training_status
    if candidates is not None:
        status["candidates"] = candidates
    return ModelFleet.from_body({
        "metadata": {"name": "f", "namespace": "ai", "uid": "u-1"},
        "spec": {
            "models": [{"name": "base", "source": {"uri": "pvc://m/base.gguf"}, "runtime": "llamacpp"}],
            "routing": {"tasks": [{"name": "math", "models": ["base"], "distillation": distillation},
                                  {"name": "chat", "models": ["base"]}]},
            "distillation": {"sink": {"volume": {"claimName": "traces"}}},
        },
        "status": status,
    })  # fmt: skip


def _job(version: int, status: dict[str, Any], traces: int = 100) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"f-train-math-v{version}",
            "labels": {training.TASK_LABEL: "math", training.VERSION_LABEL: str(version)},
            "annotations": {deciding.TRACES_ANNOTATION: str(traces), deciding.ADAPTER_ANNOTATION: "/sink/a/"},
            "creationTimestamp": "2026-12-07T07:00:00Z",
        },
        "status": status,
    }


def _view(version: int, status: dict[str, Any], traces: int = 100) -> JobView:
    view = JobView.from_body(_job(version, status, traces))
    assert view is not None
    return view


LIMIT = {"reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}
FAILED = {"failed": 3, "conditions": [
    {"type": "FailureTarget", "status": "True", **LIMIT},
    {"type": "Failed", "status": "True", **LIMIT, "lastTransitionTime": "2026-12-07T07:05:00Z"},
]}  # fmt: skip
SUCCEEDED = {"succeeded": 1, "conditions": [
    {"type": "SuccessCriteriaMet", "status": "True"},
    {"type": "Complete", "status": "True", "lastTransitionTime": "2026-12-07T07:05:00Z"},
]}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "phase", "attempts", "message"),
    [
        ({}, "Pending", 0, "waiting for a pod"),
        ({"active": 1}, "Running", 1, "pod running"),
        ({"active": 1, "failed": 1}, "Running", 2, "pod running (1 failed attempt)"),
        ({"failed": 2}, "Pending", 2, "waiting for a pod (2 failed attempts)"),
        (FAILED, "Failed", 3, "BackoffLimitExceeded: Job has reached the specified backoff limit"),
        (SUCCEEDED, "Succeeded", 1, "adapter written"),
        ({"conditions": [{"type": "Failed", "status": "False"}], "active": 1}, "Running", 1, "pod running"),
    ],
)
def test_the_phase_follows_the_job_controllers_status(
    status: dict[str, Any], phase: str, attempts: int, message: str
) -> None:
    view = _view(1, status)
    assert (view.phase, view.attempts, view.message) == (phase, attempts, message)


def test_a_job_without_task_and_version_labels_is_not_a_training_job() -> None:
    assert JobView.from_body({"metadata": {"name": "x", "labels": {}}}) is None
    labels = {training.TASK_LABEL: "m", training.VERSION_LABEL: "v"}
    assert JobView.from_body({"metadata": {"name": "x", "labels": labels}}) is None


@pytest.mark.parametrize("captured", [None, 0, 99])
def test_no_job_below_the_threshold(captured: int | None) -> None:
    plan = deciding.decide(_fleet(captured), [], NOW)
    assert (plan.entries, plan.start, plan.events) == ([], [], [])


def test_version_1_starts_at_the_threshold() -> None:
    plan = deciding.decide(_fleet(100), [], NOW)
    (entry,) = plan.start
    assert plan.entries == [entry]
    assert (entry.task, entry.version, entry.job, entry.phase) == ("math", 1, "f-train-math-v1", "Pending")
    assert (entry.traces, entry.next_traces, entry.start_time) == (100, 200, NOW)
    assert [(e.kind, e.version) for e in plan.events] == [("Started", 1)]


def test_a_running_version_is_followed_never_started_again() -> None:
    stored = [
        TrainingStatus(task="math", version=1, job="f-train-math-v1", traces=100, start_time=NOW).to_wire()
    ]
    plan = deciding.decide(_fleet(450, stored), [_view(1, {"active": 1})], NOW)
    assert plan.start == [] and plan.events == []
    (entry,) = plan.entries
    assert (entry.version, entry.phase, entry.attempts, entry.start_time) == (1, "Running", 1, NOW)


def test_a_failed_version_is_reported_once_and_not_retried() -> None:
    stored = [
        TrainingStatus(task="math", version=1, job="f-train-math-v1", phase="Running", traces=100).to_wire()
    ]
    plan = deciding.decide(_fleet(150, stored), [_view(1, FAILED)], NOW)
    (entry,) = plan.entries
    assert (entry.phase, entry.attempts, entry.completion_time) == ("Failed", 3, "2026-12-07T07:05:00Z")
    assert plan.start == []
    (event,) = plan.events
    assert (
        event.kind == "Failed" and "BackoffLimitExceeded" in event.message and "200 captured" in event.message
    )
    again = deciding.decide(_fleet(150, [entry.to_wire()]), [_view(1, FAILED)], NOW)
    assert again.events == [] and again.start == [] and again.entries == [entry]


@pytest.mark.parametrize(("outcome", "decision"), [(SUCCEEDED, "Promoted"), (SUCCEEDED, "RolledBack"),
                                                    (FAILED, None)])  # fmt: skip
def test_the_next_version_waits_for_another_when_traces(
    outcome: dict[str, Any], decision: str | None
) -> None:
    candidates = [{"task": "math", "model": "base-math-v1", "state": decision}] if decision else None
    finished = deciding.decide(_fleet(199, candidates=candidates), [_view(1, outcome, traces=100)], NOW)
    assert finished.start == []
    stored = [e.to_wire() for e in finished.entries]
    plan = deciding.decide(_fleet(230, stored, candidates=candidates), [_view(1, outcome)], NOW)
    (entry,) = plan.start
    assert (entry.version, entry.job, entry.traces, entry.next_traces) == (2, "f-train-math-v2", 230, 330)


SHADOWING = [{"task": "math", "model": "base-math-v1", "state": "Shadowing"}]


@pytest.mark.parametrize("candidates", [None, SHADOWING])
def test_a_succeeded_version_is_evaluated_before_the_next_one_starts(
    candidates: list[dict[str, Any]] | None,
) -> None:
    """Not yet the candidate (the promotion timer has not seen it) or still shadowing: no v2, however
    many traces; the Succeeded Event says so."""
    finished = deciding.decide(_fleet(150), [_view(1, SUCCEEDED, traces=100)], NOW)
    message = finished.events[0].message
    assert "starts once it is promoted or rolled back and at 200 captured traces" in message
    stored = [e.to_wire() for e in finished.entries]
    plan = deciding.decide(_fleet(5000, stored, candidates=candidates), [_view(1, SUCCEEDED)], NOW)
    assert plan.start == [] and [(e.version, e.phase) for e in plan.entries] == [(1, "Succeeded")]


def test_a_version_whose_job_was_deleted_unfinished_fails_and_is_not_recreated() -> None:
    stored = [
        TrainingStatus(task="math", version=1, job="f-train-math-v1", phase="Running", traces=100).to_wire()
    ]
    plan = deciding.decide(_fleet(150, stored), [], NOW)
    (entry,) = plan.entries
    assert (entry.version, entry.phase, entry.message) == (1, "Failed", deciding.VANISHED)
    assert plan.start == [] and [e.kind for e in plan.events] == ["Failed"]


def test_a_finished_job_garbage_collected_keeps_its_entry() -> None:
    stored = [
        TrainingStatus(task="math", version=1, job="f-train-math-v1", phase="Succeeded", traces=100).to_wire()
    ]
    plan = deciding.decide(_fleet(150, stored), [], NOW)
    assert [(e.version, e.phase) for e in plan.entries] == [(1, "Succeeded")] and plan.events == []


def test_a_lost_status_is_rebuilt_from_the_jobs_without_repeating_a_version() -> None:
    plan = deciding.decide(
        _fleet(250), [_view(1, SUCCEEDED, traces=100), _view(2, {"active": 1}, traces=200)], NOW
    )
    (entry,) = plan.entries
    assert (entry.version, entry.phase, entry.traces) == (2, "Running", 200)
    assert plan.start == []


def test_a_task_that_no_longer_trains_loses_its_entry() -> None:
    stored = [TrainingStatus(task="math", version=1, job="f-train-math-v1", phase="Succeeded").to_wire()]
    plan = deciding.decide(_fleet(500, stored, train=False), [], NOW)
    assert plan.entries == [] and plan.start == []


def test_summary_and_condition() -> None:
    fleet = _fleet(0)
    assert deciding.condition(fleet, []) == (
        False, "WaitingForTraces", "math: the first version starts at 100 captured traces"
    )  # fmt: skip
    running = TrainingStatus(task="math", version=1, job="j", phase="Running")
    assert deciding.condition(fleet, [running]) == (False, "JobRunning", "math v1: Running")
    failed = running.model_copy(update={"phase": "Failed", "message": "BackoffLimitExceeded: x"})
    assert deciding.condition(fleet, [failed]) == (False, "JobFailed", "math v1 (j): BackoffLimitExceeded: x")
    done = running.model_copy(update={"phase": "Succeeded"})
    assert deciding.condition(fleet, [done]) == (True, "JobSucceeded", "math v1 succeeded")
    assert deciding.condition(_fleet(0, train=False), []) is None
    assert deciding.summary([done]) == "math=v1 Succeeded"


def test_the_applied_job_is_owned_by_the_fleet_and_records_its_count() -> None:
    fleet = _fleet(100)
    body = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": "f", "uid": "u-1"},
    }
    (entry,) = deciding.decide(fleet, [], NOW).start
    job = launching.job_manifest(body, fleet, entry)
    assert job["metadata"]["name"] == entry.job == "f-train-math-v1"
    assert job["metadata"]["ownerReferences"] == [
        {"apiVersion": "flotilla.dev/v1alpha1", "kind": "ModelFleet", "name": "f", "uid": "u-1",
         "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert job["metadata"]["annotations"][deciding.TRACES_ANNOTATION] == "100"
    assert launching.selector(fleet) == "flotilla.dev/fleet=f,flotilla.dev/component=training"
    view = JobView.from_body(job)  # what the next pass reads back from it
    assert view is not None and (view.task, view.version, view.traces, view.phase) == (
        "math",
        1,
        100,
        "Pending",
    )
