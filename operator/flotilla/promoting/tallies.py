"""A candidate's scores summed over the router replicas: pure arithmetic over counters, no I/O.

Every router replica exports monotonic counters per (task, candidate) labelled with its replica id (pod name
plus a per-process id), as ``flotilla.api.candidates`` says. A tally remembers, per replica, the counter
values it already added (``counted``, kept in ``status.candidates[].counted``) and adds only increases: a
replica read twice adds nothing, a restarted router is a new replica (nothing lost or counted twice), and
an operator restart resumes from the status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from flotilla.api import candidates
from flotilla.api.status import CandidateStatus, CountedShadow
from flotilla.counters import increases


@dataclasses.dataclass(frozen=True)
class Sample:
    """One replica's counters for one (task, candidate)."""

    replica: str
    task: str
    candidate: str
    scored: int = 0
    agreed: int = 0
    errors: int = 0


def parse(text: str) -> list[Sample]:
    """The shadow samples in one router's Prometheus text (ValueError when it is not Prometheus text)."""
    found: dict[tuple[str, str, str], dict[str, int]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            field = candidates.COUNTED_METRICS.get(sample.name)
            labels = sample.labels
            if field is None or not {"replica", "task", "candidate"} <= labels.keys():
                continue
            key = (labels["replica"], labels["task"], labels["candidate"])
            found.setdefault(key, {})[field] = int(sample.value)
    return [Sample(r, t, c, **values) for (r, t, c), values in found.items()]


@dataclasses.dataclass
class Tally:
    """One candidate's totals and what each replica's counters contributed to them."""

    scored: int = 0
    agreed: int = 0
    errors: int = 0
    counted: dict[str, tuple[int, int, int]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_status(cls, status: CandidateStatus | None) -> Tally:
        """Resume from the status the operator last wrote (a fresh tally without one)."""
        if status is None:
            return cls()
        counted = {c.replica: (c.scored, c.agreed, c.errors) for c in status.counted}
        return cls(status.scored, status.agreed, status.errors, counted)

    def observe(self, samples: Iterable[Sample]) -> bool:
        """Add each replica's increase since it was last counted (``flotilla.counters``); True when a
        total changed."""
        changed = False
        for sample in samples:
            now = (sample.scored, sample.agreed, sample.errors)
            scored, agreed, errors = increases(now, self.counted.get(sample.replica, (0, 0, 0)))
            if scored or agreed or errors:
                self.scored, self.agreed, self.errors = (
                    self.scored + scored,
                    self.agreed + agreed,
                    self.errors + errors,
                )
                changed = True
            self.counted[sample.replica] = now
        return changed

    @property
    def agreement(self) -> float:
        """agreed / scored (0 before anything was scored)."""
        return self.agreed / self.scored if self.scored else 0.0

    def counted_status(self) -> list[CountedShadow]:
        return [
            CountedShadow(replica=r, scored=s, agreed=a, errors=e)
            for r, (s, a, e) in sorted(self.counted.items())
        ]
