"""The scaling arithmetic with a fake clock: window, bounds, dead band, up/down delays, cold start."""

from __future__ import annotations

import pytest

from flotilla.autoscaler.recommending import Decision, Policy, Recommender, recommend

POLICY = Policy(min_replicas=0, max_replicas=4, target_in_flight=8, window=30, up_delay=0, down_delay=120)


def simulate(
    policy: Policy, loads: list[tuple[float, float]], start: int, step: float = 5.0
) -> tuple[list[int], list[Decision]]:
    """Tick every ``step`` seconds with (in_flight, queued) loads; the Deployment follows at once."""
    recommender = Recommender(policy)
    current, replicas, decisions = start, [], []
    for i, (in_flight, queued) in enumerate(loads):
        recommender.observe(i * step, in_flight, queued)
        decision = recommender.decide(i * step, current)
        decisions.append(decision)
        current = decision.desired
        replicas.append(current)
    return replicas, decisions


@pytest.mark.parametrize(
    ("load", "current", "policy", "expected"),
    [
        (0.0, 0, POLICY, 0),
        (0.0, 3, POLICY, 0),
        (1.0, 0, POLICY, 1),
        (8.0, 1, POLICY, 1),
        (16.0, 1, POLICY, 2),
        (17.0, 1, POLICY, 3),
        (17.0, 2, POLICY, 2),  # within the 10 % dead band of 2 replicas
        (14.5, 2, POLICY, 2),
        (14.0, 2, POLICY, 2),
        (13.0, 2, POLICY, 2),  # 13/16 is 19 % below, outside the band: ceil(13/8) = 2 anyway
        (7.0, 2, POLICY, 1),
        (1000.0, 1, POLICY, 4),  # capped at max
        (0.0, 0, Policy(2, 5, 8), 2),  # floored at min
        (24.0, 3, Policy(1, 5, 8, tolerance=0.0), 3),
        (24.000001, 3, Policy(1, 5, 8, tolerance=0.0), 4),
    ],
)
def test_recommend(load: float, current: int, policy: Policy, expected: int) -> None:
    assert recommend(load, current, policy) == expected


def test_scale_up_is_immediate_and_steps_to_the_load_capped_at_max() -> None:
    # one tick per 5 s; the window (30 s) averages, so replicas climb as the average climbs
    loads = [(8.0, 0.0)] * 8 + [(24.0, 0.0)] * 8 + [(100.0, 0.0)] * 8
    replicas, _ = simulate(POLICY, loads, start=1)
    assert replicas[:8] == [1] * 8
    assert replicas[8:16] == [2, 2, 2, 3, 3, 3, 3, 3]  # averages 10.7, 13.3, 16, 18.7, 21.3, 24...
    assert replicas[16:] == [4] * 8
    assert replicas == sorted(replicas)  # never down under rising load


def test_scale_down_waits_for_the_delay_then_goes_to_zero() -> None:
    loads = [(24.0, 0.0)] * 12 + [(0.0, 0.0)] * 60
    replicas, decisions = simulate(POLICY, loads, start=3)
    stop = 12 * 5.0
    zero_at = replicas.index(0) * 5.0
    # the window empties 30 s after load stops; the last non-zero recommendation then has to age 120 s
    assert stop + POLICY.down_delay <= zero_at <= stop + POLICY.window + POLICY.down_delay
    # down only: the emptying window lowers the recommendation 3 -> 2 -> 1 -> 0, each step delayed
    changes = [d for d in decisions if d.changed]
    assert {d.reason for d in changes} == {"ScaleDown"}
    assert len(changes) <= 3
    assert replicas[12:] == sorted(replicas[12:], reverse=True)
    assert replicas[-1] == 0


def test_scale_down_steps_follow_the_highest_recommendation_in_the_delay() -> None:
    policy = Policy(min_replicas=1, max_replicas=4, target_in_flight=8, window=5, down_delay=20)
    loads = [(32.0, 0.0)] * 4 + [(16.0, 0.0)] * 6 + [(8.0, 0.0)] * 8
    replicas, _ = simulate(policy, loads, start=4)
    assert replicas == [4] * 8 + [2] * 6 + [1] * 4


def test_up_delay_needs_a_persistent_higher_recommendation() -> None:
    policy = Policy(min_replicas=1, max_replicas=4, target_in_flight=8, window=5, up_delay=10, down_delay=60)
    spike = [(8.0, 0.0)] * 3 + [(32.0, 0.0)] + [(8.0, 0.0)] * 3  # one 5 s spike: ignored
    replicas, _ = simulate(policy, spike, start=1)
    assert replicas == [1] * 7
    sustained = [(8.0, 0.0)] * 3 + [(32.0, 0.0)] * 4
    replicas, _ = simulate(policy, sustained, start=1)
    assert replicas == [1, 1, 1, 1, 1, 4, 4]  # up once the recommendation held for 10 s


def test_queued_demand_at_zero_scales_to_one_at_once_even_with_an_up_delay() -> None:
    policy = Policy(min_replicas=0, max_replicas=4, target_in_flight=8, window=60, up_delay=30, down_delay=60)
    replicas, decisions = simulate(policy, [(0.0, 0.0)] * 14 + [(0.0, 1.0)], start=0)
    assert replicas[-1] == 1
    assert decisions[-1].reason == "ColdStart"


def test_steady_noisy_load_does_not_oscillate() -> None:
    noise = [15.0, 17.0, 16.5, 15.5, 16.0, 17.5, 14.8, 16.2]  # around 2 replicas' worth
    loads = [(noise[i % len(noise)], 0.0) for i in range(200)]
    replicas, decisions = simulate(POLICY, loads, start=2)
    assert sum(d.changed for d in decisions) == 0
    assert set(replicas) == {2}


def test_restart_does_not_scale_down_before_the_delay() -> None:
    recommender = Recommender(POLICY)  # a fresh operator finds 3 replicas and no load
    for t in range(0, 115, 5):
        recommender.observe(t, 0.0)
        assert recommender.decide(t, 3).desired == 3
    recommender.observe(125, 0.0)
    assert recommender.decide(125, 3).desired == 0


@pytest.mark.parametrize(
    ("current", "desired", "reason"), [(0, 2, "BelowMin"), (7, 4, "AboveMax"), (3, 3, "NoData")]
)
def test_bounds_apply_before_any_data(current: int, desired: int, reason: str) -> None:
    decision = Recommender(Policy(2, 4, 8)).decide(0, current)
    assert (decision.desired, decision.reason) == (desired, reason)


def test_retune_keeps_history_and_applies_new_bounds() -> None:
    recommender = Recommender(POLICY)
    recommender.observe(0, 40.0)
    assert recommender.decide(0, 1).desired == 4
    recommender.retune(Policy(min_replicas=0, max_replicas=2, target_in_flight=8, down_delay=120))
    recommender.observe(5, 40.0)
    assert recommender.decide(5, 4).desired == 2


def test_no_data_for_a_whole_window_holds_the_replicas() -> None:
    recommender = Recommender(POLICY)
    recommender.observe(0, 30.0)
    assert recommender.decide(0, 1).desired == 4
    # every router pod unreachable from here on: nothing observed, old samples age out, replicas hold
    assert recommender.decide(20, 4).desired == 4
    decision = recommender.decide(60, 4)
    assert (decision.desired, decision.reason) == (4, "NoData")
    assert recommender.decide(600, 4).desired == 4
