"""Traces captured per task, summed over the router replicas into ``status.traces``: pure arithmetic over
the capture counter (``flotilla.api.captures``), read in the same scrape as the shadow counters.

As for a candidate's scores (``tallies``), each replica's counter value already added is kept in the status
(``counted``), so a replica read twice adds nothing, a restarted router (a new replica id) adds all of its
count, and an operator restart resumes from the status. A router that was never read before it stopped
(its traces captured but its counter never scraped) is not counted: the count can fall short of the store's,
never exceed it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from flotilla.api.captures import CAPTURED_METRIC
from flotilla.api.fleet import ModelFleet
from flotilla.api.status import CountedTraces, TraceStatus
from flotilla.counters import increase


@dataclasses.dataclass(frozen=True)
class Captured:
    """One replica's captured counter for one task."""

    replica: str
    task: str
    captured: int


def parse(text: str) -> list[Captured]:
    """The capture samples in one router's Prometheus text (ValueError when it is not Prometheus text)."""
    found: list[Captured] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == CAPTURED_METRIC and {"replica", "task"} <= labels.keys():
                found.append(Captured(labels["replica"], labels["task"], int(sample.value)))
    return found


def capturing(fleet: ModelFleet) -> list[str]:
    """The tasks whose answers the routers capture."""
    return [t.name for t in fleet.spec.routing.tasks if t.distillation and t.distillation.capture]


def advance(
    fleet: ModelFleet, samples: Iterable[Captured], stored: Iterable[TraceStatus]
) -> list[TraceStatus]:
    """``status.traces``: the stored totals of the capturing tasks plus each replica's increase since it was
    last counted (``flotilla.counters``: a counter below what was counted is a reset, all of it new). Tasks
    that no longer capture keep their entry (the count a training trigger compares with); tasks no longer
    in the spec are dropped."""
    tasks = capturing(fleet)
    known = {t.name for t in fleet.spec.routing.tasks}
    totals: dict[str, tuple[int, dict[str, int]]] = {
        s.task: (s.captured, {c.replica: c.captured for c in s.counted}) for s in stored if s.task in known
    }
    for task in tasks:
        totals.setdefault(task, (0, {}))
    for sample in samples:
        if sample.task not in totals:
            continue
        total, counted = totals[sample.task]
        grown = increase(sample.captured, counted.get(sample.replica, 0))
        counted[sample.replica] = sample.captured
        totals[sample.task] = (total + grown, counted)
    return [
        TraceStatus(
            task=task,
            captured=total,
            counted=[CountedTraces(replica=r, captured=c) for r, c in sorted(counted.items())],
        )
        for task, (total, counted) in sorted(totals.items())
    ]
