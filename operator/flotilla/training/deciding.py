"""The training rule and the ``status.training`` it produces: pure, table-tested.

Per task with ``distillation.train``: version 1 starts once ``status.traces[].captured`` reaches
``when.traces``; version N+1 starts once version N has finished (Failed, or Succeeded and then promoted or
rolled back as the task's candidate) and the captured count has grown by another ``when.traces`` since
version N started. A version is trained by one Job only: it is
never created again, whether it failed, was deleted, or its finished Job was garbage-collected (the Job's
retries are its own ``backoffLimit``). The version record is the Job itself (its labels and the
``flotilla.dev/traces`` annotation) as much as the status, so a lost status write neither repeats nor skips a
version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from flotilla.api.distillation import TrainSpec
from flotilla.api.fleet import ModelFleet
from flotilla.api.status import TrainingPhase, TrainingStatus
from flotilla.render import routing, trained, training

TRACES_ANNOTATION = "flotilla.dev/traces"
"""On a training Job: the captured count at which it was created (the next version counts from it)."""
ADAPTER_ANNOTATION = "flotilla.dev/adapter"
FINISHED = ("Succeeded", "Failed")
VANISHED = "the Job was deleted before it finished; this version is not trained again"


@dataclasses.dataclass(frozen=True)
class JobView:
    """What the rule needs from one training Job."""

    task: str
    version: int
    name: str
    phase: TrainingPhase
    attempts: int
    traces: int
    adapter: str = ""
    message: str = ""
    start_time: str | None = None
    completion_time: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobView | None:
        """Summarise a Job; None for one without the task and version labels."""
        meta = body.get("metadata") or {}
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        task, version = labels.get(training.TASK_LABEL), labels.get(training.VERSION_LABEL)
        if not task or not str(version or "").isdigit():
            return None
        status = body.get("status") or {}
        phase, message, finished = job_phase(status)
        attempts = sum(int(status.get(k) or 0) for k in ("failed", "succeeded", "active"))
        traces = str(annotations.get(TRACES_ANNOTATION) or "0")
        return cls(
            task=str(task),
            version=int(str(version)),
            name=str(meta.get("name")),
            phase=phase,
            attempts=attempts,
            traces=int(traces) if traces.isdigit() else 0,
            adapter=str(annotations.get(ADAPTER_ANNOTATION) or ""),
            message=message,
            start_time=meta.get("creationTimestamp"),
            completion_time=finished,
        )


def job_phase(status: Mapping[str, Any]) -> tuple[TrainingPhase, str, str | None]:
    """(phase, message, finished at) of a Job's status: a Failed or Complete condition (or the controller's
    FailureTarget / SuccessCriteriaMet, set just before them) ends it; an active pod is Running; otherwise
    Pending (not scheduled yet, or backing off before the next attempt)."""
    true = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    for kind in ("Failed", "Complete", "FailureTarget", "SuccessCriteriaMet"):  # the final ones first
        cond = true.get(kind)
        if cond is None:
            continue
        when = cond.get("lastTransitionTime")
        if kind in ("Failed", "FailureTarget"):
            return "Failed", f"{cond.get('reason') or kind}: {cond.get('message') or ''}".rstrip(": "), when
        return "Succeeded", "adapter written", when
    failed = int(status.get("failed") or 0)
    retry = f" ({failed} failed attempt{'s' if failed != 1 else ''})" if failed else ""
    if int(status.get("active") or 0) > 0:
        return "Running", f"pod running{retry}", None
    return "Pending", f"waiting for a pod{retry}", None


@dataclasses.dataclass(frozen=True)
class Event:
    """A change worth a Kubernetes Event on the fleet."""

    kind: Literal["Started", "Succeeded", "Failed"]
    task: str
    version: int
    message: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """One pass: the new ``status.training``, the Jobs to create and the Events to post."""

    entries: list[TrainingStatus]
    start: list[TrainingStatus]
    """Entries whose Job is to be created now (also in ``entries``, phase Pending)."""
    events: list[Event]


def trains(fleet: ModelFleet) -> list[tuple[str, TrainSpec]]:
    """(task, train) for every task of the fleet that declares a training Job."""
    return [
        (t.name, t.distillation.train)
        for t in fleet.spec.routing.tasks
        if t.distillation is not None and t.distillation.train is not None
    ]


def _captured(fleet: ModelFleet) -> dict[str, int]:
    traces = fleet.status.traces if fleet.status is not None and fleet.status.traces else []
    return {t.task: t.captured for t in traces}


def _entry(view: JobView, every: int) -> TrainingStatus:
    return TrainingStatus(
        task=view.task,
        version=view.version,
        job=view.name,
        phase=view.phase,
        attempts=view.attempts,
        traces=view.traces,
        next_traces=view.traces + every,
        adapter=view.adapter,
        message=view.message,
        start_time=view.start_time,
        completion_time=view.completion_time,
    )


def _latest(
    before: TrainingStatus | None, views: Mapping[int, JobView], every: int, now: str
) -> TrainingStatus | None:
    """The entry of a task's latest version: its Job's when listed, else the stored one (Failed when it
    had not finished: its Job was deleted)."""
    latest = max([*views, before.version if before else 0])
    if latest in views:
        entry = _entry(views[latest], every)
        if before is not None and before.version == latest and before.start_time:
            entry = entry.model_copy(update={"start_time": before.start_time})
        return entry
    if before is None:
        return None
    update: dict[str, Any] = {"next_traces": before.traces + every}
    if before.phase not in FINISHED:
        update |= {"phase": "Failed", "message": VANISHED, "completion_time": now}
    return before.model_copy(update=update)


def decide(fleet: ModelFleet, jobs: Iterable[JobView], now: str) -> Plan:
    """The training status after observing the fleet's Jobs, and the next version to start per task.

    The latest version of a task is the highest of its stored entry and its Jobs. Its Job, when listed,
    gives the phase; a Job gone while unfinished makes it Failed (deleted by someone) and a finished one
    gone keeps its entry (garbage-collected a day after it finished). Tasks without ``train`` lose their
    entry (their Job, if any, runs to its end).
    """
    stored = {e.task: e for e in (fleet.status.training if fleet.status else None) or []}
    captured = _captured(fleet)
    by_task: dict[str, dict[int, JobView]] = {}
    for job in jobs:
        by_task.setdefault(job.task, {})[job.version] = job
    entries: list[TrainingStatus] = []
    start: list[TrainingStatus] = []
    events: list[Event] = []
    for task, train in trains(fleet):
        every, before = train.when.traces, stored.get(task)
        entry = _latest(before, by_task.get(task, {}), every, now)
        changed = entry is not None and (
            before is None or (before.version, before.phase) != (entry.version, entry.phase)
        )
        if entry is not None and changed and entry.phase in FINISHED:
            events.append(
                Event(
                    "Succeeded" if entry.phase == "Succeeded" else "Failed",
                    task,
                    entry.version,
                    _finished(entry),
                )
            )
        count = captured.get(task, 0)
        if (
            (entry is None or entry.phase in FINISHED)
            and count >= (entry.next_traces if entry else every)
            and not _evaluating(fleet, task, train, entry)
        ):
            version = (entry.version if entry else 0) + 1
            entry = TrainingStatus(
                task=task,
                version=version,
                job=training.job_name(fleet, task, version),
                phase="Pending",
                traces=count,
                next_traces=count + every,
                message=f"created at {count} captured traces",
                start_time=now,
            )
            start.append(entry)
            message = (
                f"task {task}: training Job {entry.job} created for adapter v{version} "
                f"({count} traces captured, when.traces {every})"
            )
            events.append(Event("Started", task, version, message))
        if entry is not None:
            entries.append(entry)
    return Plan(entries, start, events)


def _evaluating(fleet: ModelFleet, task: str, train: TrainSpec, entry: TrainingStatus | None) -> bool:
    """The task's latest version succeeded and is still its candidate, neither promoted nor rolled back:
    the next version waits (else, on a busy fleet, each version would replace the last as the candidate
    before it was ever decided)."""
    if entry is None or entry.phase != "Succeeded":
        return False
    model = trained.model_name(train.base, task, entry.version)
    return routing.candidate_state(fleet, task, model) == "Shadowing"  # Shadowing too before its first pass


def _finished(entry: TrainingStatus) -> str:
    verb = "succeeded" if entry.phase == "Succeeded" else "failed"
    tail = f": {entry.message}" if entry.phase == "Failed" else f"; adapter in {entry.adapter}"
    after = "once it is promoted or rolled back and " if entry.phase == "Succeeded" else ""
    return (
        f"task {entry.task}: training Job {entry.job} (adapter v{entry.version}) {verb} after "
        f"{entry.attempts} attempt{'s' if entry.attempts != 1 else ''}{tail}; the next version starts "
        f"{after}at {entry.next_traces} captured traces"
    )


def summary(entries: Sequence[TrainingStatus]) -> str:
    """``task=vN Phase`` per task (the TRAINING column of kubectl get mf)."""
    return ", ".join(f"{e.task}=v{e.version} {e.phase}" for e in entries)


def condition(fleet: ModelFleet, entries: Sequence[TrainingStatus]) -> tuple[bool, str, str] | None:
    """The Trained condition (ok, reason, message); None when no task has ``train``."""
    wants = {task: train.when.traces for task, train in trains(fleet)}
    tasks = list(wants)
    if not tasks:
        return None
    by_task = {e.task: e for e in entries}
    failed = [by_task[t] for t in tasks if t in by_task and by_task[t].phase == "Failed"]
    if failed:
        text = "; ".join(f"{e.task} v{e.version} ({e.job}): {e.message}" for e in failed)
        return False, "JobFailed", text
    running = [by_task[t] for t in tasks if t in by_task and by_task[t].phase in ("Pending", "Running")]
    if running:
        return False, "JobRunning", "; ".join(f"{e.task} v{e.version}: {e.phase}" for e in running)
    waiting = [t for t in tasks if t not in by_task]
    if waiting:
        text = "; ".join(f"{t}: the first version starts at {wants[t]} captured traces" for t in waiting)
        return False, "WaitingForTraces", text
    return (
        True,
        "JobSucceeded",
        "; ".join(f"{by_task[t].task} v{by_task[t].version} succeeded" for t in tasks),
    )
