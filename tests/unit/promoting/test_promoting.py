"""Promotion: the decision rule (table), summing replicas' counters, and status.candidates from a fleet."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.api.fleet import ModelFleet
from flotilla.promoting import deciding
from flotilla.promoting.tallies import Sample, Tally, parse

NOW = "2026-12-07T04:00:00Z"


@pytest.mark.parametrize(
    ("scored", "agreed", "requests", "promote_at", "state"),
    [
        (0, 0, 200, 0.8, "Shadowing"),
        (100, 90, 200, 0.8, "Shadowing"),
        (200, 160, 200, 0.8, "Promoted"),  # exactly at the threshold
        (200, 159, 200, 0.8, "RolledBack"),
        (230, 200, 200, 0.8, "Promoted"),  # counted past N between reads: all scored count
        (41, 0, 200, 0.8, "RolledBack"),  # 159 of 200 at best: cannot reach 0.8
        (40, 0, 200, 0.8, "Shadowing"),  # 160 of 200 at best: still possible
        (3, 3, 3, 1.0, "Promoted"),
        (3, 2, 3, 1.0, "RolledBack"),
        (1, 0, 10, 0.0, "Shadowing"),
        (10, 0, 10, 0.0, "Promoted"),
        (10, 7, 10, 0.7, "Promoted"),  # 0.7 * 10 in floating point is 7.000000000000001
    ],
)
def test_decide(scored: int, agreed: int, requests: int, promote_at: float, state: str) -> None:
    assert deciding.decide(scored, agreed, requests, promote_at) == state


def test_tally_adds_increases_only_and_resumes_from_status() -> None:
    tally = Tally()
    assert tally.observe([Sample("a-1", "math", "tuned", 3, 2, 1)])
    assert not tally.observe([Sample("a-1", "math", "tuned", 3, 2, 1)])  # read twice: nothing new
    tally.observe([Sample("a-1", "math", "tuned", 5, 4, 1), Sample("b-1", "math", "tuned", 2, 2, 0)])
    assert (tally.scored, tally.agreed, tally.errors) == (7, 6, 1)
    tally.observe([Sample("a-2", "math", "tuned", 1, 1, 0)])  # a's pod restarted: a new replica
    assert (tally.scored, tally.agreed) == (8, 7)
    assert tally.agreement == pytest.approx(7 / 8)
    entries, _ = deciding.advance(_fleet(requests=100), [Sample("a-1", "math", "tuned", 5, 4, 1)], NOW)
    resumed = Tally.from_status(entries[0])  # an operator restart
    resumed.observe([Sample("a-1", "math", "tuned", 6, 5, 1)])
    assert (resumed.scored, resumed.agreed, resumed.errors) == (6, 5, 1)


def test_parse_reads_the_three_counters_per_replica_and_candidate() -> None:
    text = (
        "# TYPE flotilla_router_shadow_scored_total counter\n"
        'flotilla_router_shadow_scored_total{task="math",candidate="tuned",replica="r-1"} 4.0\n'
        'flotilla_router_shadow_agreed_total{task="math",candidate="tuned",replica="r-1"} 3.0\n'
        'flotilla_router_shadow_errors_total{task="math",candidate="tuned",replica="r-1"} 1.0\n'
        'flotilla_router_shadow_mirrored_total{task="math",candidate="tuned",replica="r-1"} 9.0\n'
        'flotilla_router_requests_total{model="tuned",task="math",outcome="ok"} 9.0\n'
    )
    assert parse(text) == [Sample("r-1", "math", "tuned", 4, 3, 1)]
    with pytest.raises(ValueError):
        parse("this is { not prometheus")


def _fleet(requests: int = 4, promote_at: float = 0.75, status: dict[str, Any] | None = None) -> ModelFleet:
    body: dict[str, Any] = {
        "metadata": {"name": "f", "namespace": "ai"},
        "spec": {
            "models": [
                {"name": "base", "source": {"uri": "pvc://m/base.gguf"}, "runtime": "llamacpp"},
                {"name": "tuned", "source": {"uri": "pvc://m/tuned.gguf"}, "runtime": "llamacpp"},
            ],
            "routing": {
                "tasks": [
                    {"name": "math", "models": ["base"],
                     "distillation": {"shadow": {"model": "tuned", "share": 1, "requests": requests,
                                                 "promoteAt": promote_at}}},
                    {"name": "chat", "models": ["base"]},
                ]
            },
        },
    }  # fmt: skip
    if status is not None:
        body["status"] = status
    return ModelFleet.from_body(body)


def test_advance_decides_once_and_keeps_the_decision() -> None:
    entries, decisions = deciding.advance(_fleet(), [Sample("r", "math", "tuned", 2, 2, 0)], NOW)
    assert [(e.task, e.model, e.state, e.scored, e.agreed) for e in entries] == [
        ("math", "tuned", "Shadowing", 2, 2)
    ]
    assert decisions == [] and entries[0].last_transition_time is None
    status = {"candidates": [e.to_wire() for e in entries]}
    entries, decisions = deciding.advance(_fleet(status=status), [Sample("r", "math", "tuned", 4, 3, 0)], NOW)
    assert entries[0].state == "Promoted" and entries[0].agreement == 0.75
    assert entries[0].last_transition_time == NOW
    assert [(d.task, d.model, d.state) for d in decisions] == [("math", "tuned", "Promoted")]
    assert "agreement 0.75 (3/4 scored, promoteAt 0.75)" in decisions[0].message()
    assert deciding.summary(entries) == "math:tuned=Promoted 3/4"
    # Decided: later counters change nothing, and no second decision.
    status = {"candidates": [e.to_wire() for e in entries]}
    again, decisions = deciding.advance(_fleet(status=status), [Sample("r", "math", "tuned", 9, 0, 5)], NOW)
    assert again == entries and decisions == []


def test_advance_rolls_back_and_drops_candidates_the_spec_no_longer_names() -> None:
    entries, decisions = deciding.advance(_fleet(), [Sample("r", "math", "tuned", 2, 0, 2)], NOW)
    assert entries[0].state == "RolledBack" and entries[0].errors == 2
    assert [d.state for d in decisions] == ["RolledBack"]
    stale = {"candidates": [{"task": "math", "model": "older", "state": "Promoted"}]}
    entries, _ = deciding.advance(_fleet(status=stale), [], NOW)
    assert [(e.model, e.state) for e in entries] == [("tuned", "Shadowing")]
