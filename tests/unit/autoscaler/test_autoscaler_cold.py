"""Scale from zero on the router's cold-requests counter, with a fake clock: the per-pod delta rules
(baseline, increase, counter reset, failed and vanished pods), the arithmetic (1 at once, warm for the
scale-down delay, never more than 1 from cold requests alone) and the loop against real metrics servers."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from metricservers import router_servers
from test_autoscaler_scaling import MODEL, Clock, FakeCluster, fleet_body, make, ticks

from flotilla.autoscaler.recommending import Policy, Recommender
from flotilla.autoscaler.scraping import ColdCounters, ModelLoad, Scrape, parse

A, B = "http://a:8080", "http://b:8080"


def scrape(**pods: dict[str, float]) -> Scrape:
    """A scrape in which each keyword (``a``/``b``) is a pod that answered with these counter values."""
    readings = {
        {"a": A, "b": B}[pod]: {m: ModelLoad(cold_requests=v) for m, v in counters.items()}
        for pod, counters in pods.items()
    }
    return Scrape(loads={}, answered=len(readings), pods=readings)


def test_parse_reads_the_counter_and_ignores_its_created_sample() -> None:
    text = (
        "# TYPE flotilla_router_cold_requests_total counter\n"
        'flotilla_router_cold_requests_total{model="coder"} 3.0\n'
        "# TYPE flotilla_router_cold_requests_created gauge\n"
        'flotilla_router_cold_requests_created{model="coder"} 1.79e+09\n'
        "# TYPE flotilla_router_queued gauge\n"
        'flotilla_router_queued{model="coder"} 1\n'
    )
    assert parse(text) == {"coder": ModelLoad(in_flight=0, queued=1, cold_requests=3)}


def test_first_sight_is_a_baseline_then_increases_count() -> None:
    counters = ColdCounters()
    assert counters.update(scrape(a={"coder": 40}), [A]) == {}  # an operator restart invents nothing
    assert counters.update(scrape(a={"coder": 40}), [A]) == {}
    assert counters.update(scrape(a={"coder": 42}), [A]) == {"coder": 2}
    assert counters.update(scrape(a={"coder": 42}, b={"coder": 5}), [A, B]) == {}  # b is new
    assert counters.update(scrape(a={"coder": 43}, b={"coder": 7, "math": 1}), [A, B]) == {
        "coder": 3,  # summed over the pods
        "math": 1,  # a model a known pod did not export before counts from 0
    }


def test_a_counter_that_went_down_is_a_restarted_pod() -> None:
    counters = ColdCounters()
    counters.update(scrape(a={"coder": 40, "math": 9}), [A])
    # same address, counters begin again: the new value is the increase; a model not yet
    # counted since the restart is missing, and counts from 0 when it shows up
    assert counters.update(scrape(a={"coder": 2}), [A]) == {"coder": 2}
    assert counters.update(scrape(a={"coder": 2, "math": 1}), [A]) == {"math": 1}


def test_a_silent_pod_keeps_its_baseline_and_a_vanished_one_is_forgotten() -> None:
    counters = ColdCounters()
    counters.update(scrape(a={"coder": 1}, b={"coder": 1}), [A, B])
    assert counters.update(scrape(a={"coder": 1}), [A, B]) == {}  # b timed out: still discovered
    assert counters.known() == {A, B}
    assert counters.update(scrape(a={"coder": 1}, b={"coder": 4}), [A, B]) == {"coder": 3}
    assert counters.update(scrape(a={"coder": 1}), [A]) == {}  # b left the Service
    assert counters.known() == {A}
    assert counters.update(scrape(a={"coder": 1}, b={"coder": 9}), [A, B]) == {}  # back: a new baseline


POLICY = Policy(min_replicas=0, max_replicas=4, target_in_flight=8, window=30, up_delay=20, down_delay=60)


def run(policy: Policy, colds: list[float], start: int = 0, step: float = 5.0) -> list[tuple[int, str]]:
    """Tick with no in-flight or held load, only ``colds[i]`` cold requests; the Deployment follows."""
    recommender, current, seen = Recommender(policy), start, []
    for i, cold in enumerate(colds):
        recommender.observe(i * step, 0.0, 0.0, cold)
        decision = recommender.decide(i * step, current)
        assert decision.load == 0.0  # cold requests never enter the load window
        current = decision.desired
        seen.append((current, decision.reason))
    return seen


def test_cold_requests_at_zero_start_one_replica_at_once_and_keep_it_for_the_delay() -> None:
    seen = run(POLICY, [0, 0, 1] + [0] * 14)
    assert seen[:3] == [(0, "Steady"), (0, "Steady"), (1, "ColdStart")]  # despite up_delay 20 s
    replicas = [r for r, _ in seen]
    assert replicas[3:15] == [1] * 12  # warm for the next ones: up to 60 s after the cold request ...
    assert replicas[15:] == [0] * 2  # ... then it parks again
    assert [b for a, b in itertools.pairwise(replicas) if a != b] == [1, 0]  # no flapping


def test_more_cold_requests_while_starting_keep_it_warm_longer() -> None:
    replicas = [r for r, _ in run(POLICY, [1, 0, 0, 0, 0, 0, 1] + [0] * 14)]
    assert replicas[:19] == [1] * 19  # 60 s counted from the second cold request, at tick 6
    assert replicas[19:] == [0] * 2


def test_cold_requests_alone_never_ask_for_more_than_one() -> None:
    assert run(POLICY, [500, 500, 500]) == [(1, "ColdStart"), (1, "Steady"), (1, "Steady")]
    assert run(Policy(2, 4, 8, down_delay=0), [50, 0], start=3)[-1] == (2, "ScaleDown")  # min rules
    assert run(Policy(0, 0, 8), [5]) == [(0, "Steady")]  # max 0: parked on purpose


def test_cold_requests_count_for_one_tick_only() -> None:
    recommender = Recommender(Policy(0, 4, 8, down_delay=0))
    recommender.observe(0.0, 0.0, 0.0, 3)
    assert recommender.decide(0.0, 0).desired == 1
    assert recommender.decide(5.0, 0).desired == 0  # no scrape this tick: nothing new was counted


@pytest_asyncio.fixture(loop_scope="function")  # aiohttp binds a session to its loop
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as c:
        yield c


async def test_a_cold_spill_between_scrapes_wakes_the_model(client: aiohttp.ClientSession) -> None:
    clock = Clock()
    with router_servers(1) as (a,):
        counter = a.metrics.cold_requests.labels("coder")
        counter.inc(5)  # before the operator started: old demand
        cluster = FakeCluster(fleet_body(MODEL), {"f-coder": 0})
        scaler = make(cluster, client, clock, [a.url])
        await ticks(scaler, clock, 3)
        assert cluster.scaled == []
        counter.inc()  # one request held for less than a tick (or spilled at once); the gauge reads 0
        await ticks(scaler, clock, 1)
        assert cluster.scaled == [("f-coder", 1)]
        reason, message = cluster.events[-1]
        assert reason == "ColdStart" and "1 requests found it cold" in message
        await ticks(scaler, clock, 12)  # up to MODEL's scaleDownDelay (60 s) later: kept warm
        assert cluster.scaled == [("f-coder", 1)]
        await ticks(scaler, clock, 1)
        assert cluster.scaled == [("f-coder", 1), ("f-coder", 0)]
        restarted = make(cluster, client, clock, [a.url])  # an operator restart: counter still at 6
        await ticks(restarted, clock, 3)
    assert cluster.scaled == [("f-coder", 1), ("f-coder", 0)]
