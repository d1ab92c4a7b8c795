"""List a fleet's training Jobs, create the ones ``deciding`` asks for, and write ``status.training`` (the
I/O half of the training loop; the rule is ``deciding``).

A Job is applied server-side under its own field manager, owned by the fleet (garbage-collected with it),
before the status names it: a failed status write is repaired from the Job on the next pass, and a failed
apply leaves nothing to repeat. Jobs are only ever created: the operator never patches, restores or deletes
one (a finished Job is removed by its ``ttlSecondsAfterFinished``, the rest with the fleet).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from flotilla import errors
from flotilla.api import fleet as fleet_api
from flotilla.api.status import TrainingStatus
from flotilla.reconcile import desiring, owners
from flotilla.reconcile import kube as kubeapi
from flotilla.render import naming, training
from flotilla.training import deciding

log = logging.getLogger(__name__)
FIELD_MANAGER = "flotilla-training"
"""Field manager of the training Jobs and of status.training / status.trainingSummary."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One pass over a fleet: the status entries written (None: unchanged) and what deserves an Event."""

    entries: list[TrainingStatus] | None
    events: list[deciding.Event]


def selector(fleet: fleet_api.ModelFleet) -> str:
    """The label selector of the fleet's training Jobs."""
    return f"{naming.FLEET}={fleet.name},{naming.COMPONENT}={training.COMPONENT}"


def job_manifest(
    body: Mapping[str, Any], fleet: fleet_api.ModelFleet, entry: TrainingStatus
) -> dict[str, Any]:
    """The rendered Job of ``entry`` owned by the fleet, with the captured count it starts at.
    InvalidSpecError when it cannot be rendered."""
    job = training.render_training_job(fleet, entry.task, entry.version, desiring.settings())
    job["metadata"]["annotations"][deciding.TRACES_ANNOTATION] = str(entry.traces)
    return owners.owned(job, body)


async def observe(kube: kubeapi.Kube, fleet: fleet_api.ModelFleet) -> list[deciding.JobView]:
    """The fleet's training Jobs, summarised."""
    found = await asyncio.to_thread(kube.list, kubeapi.JOB, fleet.namespace, selector(fleet))
    views = (deciding.JobView.from_body(job) for job in found)
    return [v for v in views if v is not None]


async def tick(kube: kubeapi.Kube, body: Mapping[str, Any], now: str) -> Outcome:
    """Observe the fleet's Jobs, create the versions that are due, and write ``status.training`` if it
    changed. InvalidSpecError for a fleet that does not parse; ApiError when a Job or the status cannot be
    written (nothing is recorded then, so the next pass tries again)."""
    fleet = fleet_api.ModelFleet.from_body(body)
    stored = (body.get("status") or {}).get("training") or []
    jobs = await observe(kube, fleet) if deciding.trains(fleet) else []
    plan = deciding.decide(fleet, jobs, now)
    entries, events = list(plan.entries), list(plan.events)
    for entry in plan.start:
        try:
            manifest = job_manifest(body, fleet, entry)
        except errors.InvalidSpecError as exc:
            failed = entry.model_copy(
                update={
                    "phase": "Failed",
                    "message": f"the Job could not be rendered: {exc}",
                    "completion_time": now,
                }
            )
            entries = [failed if e is entry else e for e in entries]
            events = [e for e in events if (e.task, e.version) != (entry.task, entry.version)]
            events.append(
                deciding.Event("Failed", entry.task, entry.version, f"task {entry.task}: {failed.message}")
            )
            continue
        await asyncio.to_thread(kube.apply, manifest, FIELD_MANAGER)
        log.info("training Job %s created (task %s, adapter v%d)", entry.job, entry.task, entry.version)
    wire = [e.to_wire() for e in entries]
    if wire == stored:
        return Outcome(None, events)
    patch = {"status": {"training": wire or None, "trainingSummary": deciding.summary(entries) or None}}
    path = kubeapi.custom_path(
        fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL, fleet.namespace, fleet.name
    )
    await asyncio.to_thread(kube.merge_patch, path + "/status", patch, FIELD_MANAGER)
    return Outcome(entries, events)
