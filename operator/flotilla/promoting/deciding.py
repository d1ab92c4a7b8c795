"""The promotion rule and the ``status.candidates`` it produces: pure, table-tested.

A candidate shadows until ``requests`` mirrors are scored, then is promoted when its agreement (agreed /
scored) reaches ``promoteAt`` and rolled back otherwise; it is rolled back early once even agreement on
every remaining request could not reach ``promoteAt``. A decision is final for that (task, model): the
routers stop mirroring, and a promoted candidate is rendered as the task's first model
(``render.routing``) for as long as the spec names it as the task's shadow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from flotilla.api.distillation import ShadowSpec
from flotilla.api.fleet import ModelFleet
from flotilla.api.status import CandidateState, CandidateStatus
from flotilla.promoting.tallies import Sample, Tally
from flotilla.render import trained

_EPSILON = 1e-9


def decide(scored: int, agreed: int, requests: int, promote_at: float) -> CandidateState:
    """Shadowing, Promoted or RolledBack after ``scored`` requests of which ``agreed`` agreed."""
    if scored >= requests:
        return "Promoted" if agreed >= promote_at * scored - _EPSILON else "RolledBack"
    best = agreed + (requests - scored)  # every remaining request agrees
    if best < promote_at * requests - _EPSILON:
        return "RolledBack"
    return "Shadowing"


@dataclasses.dataclass(frozen=True)
class Decision:
    """A candidate that was just promoted or rolled back (an Event and a re-render follow)."""

    task: str
    model: str
    state: CandidateState
    scored: int
    agreed: int
    promote_at: float

    def message(self) -> str:
        share = self.agreed / self.scored if self.scored else 0.0
        verb = "promoted to first model" if self.state == "Promoted" else "rolled back"
        return (
            f"task {self.task}: candidate {self.model} {verb}: agreement {share:.2f} "
            f"({self.agreed}/{self.scored} scored, promoteAt {self.promote_at:g})"
        )


def shadows(fleet: ModelFleet) -> list[tuple[str, ShadowSpec]]:
    """(task, shadow) for every task of the fleet that declares a candidate."""
    return [
        (t.name, t.distillation.shadow)
        for t in fleet.spec.routing.tasks
        if t.distillation is not None and t.distillation.shadow is not None
    ]


def _promoted_versions(
    fleet: ModelFleet, previous: Mapping[tuple[str, str], CandidateStatus]
) -> list[CandidateStatus]:
    """The entries of promoted trained versions that serve first while a newer version is the candidate."""
    kept = []
    for task in fleet.spec.routing.tasks:
        first = task.models[0] if task.models else None
        entry = previous.get((task.name, first)) if first is not None else None
        candidate = task.distillation.shadow if task.distillation else None
        if (
            entry is not None
            and entry.state == "Promoted"
            and trained.version_of(task, entry.model) is not None
            and (candidate is None or candidate.model != entry.model)
        ):
            kept.append(entry)
    return kept


def advance(
    fleet: ModelFleet, samples: Iterable[Sample], now: str
) -> tuple[list[CandidateStatus], list[Decision]]:
    """The new ``status.candidates`` after the routers' ``samples``, and the decisions made just now.

    One entry per task with a shadow, in spec order; an entry whose (task, model) the spec no longer names
    is dropped, except a promoted trained version the task still routes to first (``render.trained``:
    it is how the operator remembers it while a newer version shadows). A decided candidate keeps its
    entry as it is (its counters are no longer read).
    """
    previous = {(c.task, c.model): c for c in (fleet.status.candidates if fleet.status else None) or []}
    seen = list(samples)
    entries = _promoted_versions(fleet, previous)
    decisions: list[Decision] = []
    for task, shadow in shadows(fleet):
        before = previous.get((task, shadow.model))
        if before is not None and before.state != "Shadowing":
            entries.append(before)
            continue
        tally = Tally.from_status(before)
        tally.observe(s for s in seen if s.task == task and s.candidate == shadow.model)
        state = decide(tally.scored, tally.agreed, shadow.requests, shadow.promote_at)
        entries.append(
            CandidateStatus(
                task=task,
                model=shadow.model,
                state=state,
                scored=tally.scored,
                agreed=tally.agreed,
                errors=tally.errors,
                agreement=round(tally.agreement, 4),
                last_transition_time=None if state == "Shadowing" else now,
                counted=tally.counted_status(),
            )
        )
        if state != "Shadowing":
            decisions.append(
                Decision(task, shadow.model, state, tally.scored, tally.agreed, shadow.promote_at)
            )
    return entries, decisions


def summary(entries: Sequence[CandidateStatus]) -> str:
    """``task:model=State agreed/scored`` per candidate (the CANDIDATES column of kubectl get mf)."""
    return ", ".join(f"{c.task}:{c.model}={c.state} {c.agreed}/{c.scored}" for c in entries)
