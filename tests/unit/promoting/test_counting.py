"""status.traces: the routers' capture counters (as the router's own registry exports them) summed over
replicas, resumed from the status, and kept per capturing task."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from flotilla.api.fleet import ModelFleet
from flotilla.capturing.pipeline import CaptureMetrics
from flotilla.promoting import counting
from flotilla.promoting.counting import Captured


def _exported(counts: dict[tuple[str, str], int]) -> str:
    """/metrics text of a router registry whose capture counter was advanced by (task, replica)."""
    registry = CollectorRegistry()
    metrics = CaptureMetrics(registry)
    for (task, replica), count in counts.items():
        metrics.captured.labels(task, replica).inc(count)
    metrics.dropped.labels("spool_full").inc(7)
    return generate_latest(registry).decode()


def _fleet(tasks: list[dict[str, Any]], status: dict[str, Any] | None = None) -> ModelFleet:
    body: dict[str, Any] = {
        "metadata": {"name": "f", "namespace": "ai"},
        "spec": {
            "models": [{"name": "base", "source": {"uri": "pvc://m/base.gguf"}, "runtime": "llamacpp"}],
            "routing": {"tasks": tasks},
            "distillation": {"sink": {"volume": {"claimName": "traces"}}},
        },
    }
    if status is not None:
        body["status"] = status
    return ModelFleet.from_body(body)


CAPTURING = [
    {"name": "math", "models": ["base"], "distillation": {"capture": {"sample": 1}}},
    {"name": "chat", "models": ["base"]},
]


def test_parse_reads_the_router_registrys_counter_per_task_and_replica() -> None:
    text = _exported({("math", "r-a"): 3, ("math", "r-b"): 2, ("chat", "r-a"): 1})
    assert sorted(counting.parse(text), key=lambda c: (c.task, c.replica)) == [
        Captured("r-a", "chat", 1),
        Captured("r-a", "math", 3),
        Captured("r-b", "math", 2),
    ]


def test_replicas_are_summed_read_twice_once_and_resumed_from_the_status() -> None:
    fleet = _fleet(CAPTURING)
    first = counting.advance(fleet, counting.parse(_exported({("math", "r-a"): 3, ("math", "r-b"): 2})), [])
    assert [(t.task, t.captured) for t in first] == [("math", 5)]  # chat does not capture: no entry
    again = counting.advance(fleet, counting.parse(_exported({("math", "r-a"): 3})), first)
    assert again[0].captured == 5  # the same counter read again adds nothing
    # an operator restart: the status is all it has; r-a went on, r-b restarted as r-c
    status = {"traces": [t.to_wire() for t in again]}
    resumed = _fleet(CAPTURING, status=status)
    assert resumed.status is not None and resumed.status.traces is not None
    later = counting.advance(
        resumed, [Captured("r-a", "math", 10), Captured("r-c", "math", 4)], resumed.status.traces
    )
    assert later[0].captured == 5 + 7 + 4
    assert [(c.replica, c.captured) for c in later[0].counted] == [("r-a", 10), ("r-b", 2), ("r-c", 4)]


def test_a_counter_that_went_back_is_a_reset_and_an_uncapturing_task_keeps_its_count() -> None:
    fleet = _fleet(CAPTURING)
    counted = counting.advance(fleet, [Captured("r-a", "math", 8)], [])
    reset = counting.advance(fleet, [Captured("r-a", "math", 3)], counted)
    assert reset[0].captured == 11
    stopped = _fleet([{"name": "math", "models": ["base"]}])  # capture turned off: the count stays
    assert [(t.task, t.captured) for t in counting.advance(stopped, [], reset)] == [("math", 11)]
    gone = _fleet([{"name": "other", "models": ["base"]}])  # the task left the spec: the entry goes
    assert counting.advance(gone, [Captured("r-a", "math", 20)], reset) == []
