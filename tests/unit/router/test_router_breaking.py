"""Circuit breaker state machine, with a fake clock."""

from __future__ import annotations

from flotilla.router.breaking import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_n_consecutive_failures_only():
    breaker = CircuitBreaker(3, 10.0, Clock())
    breaker.failure()
    breaker.failure()
    breaker.success()  # resets the count
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed" and breaker.ready()
    breaker.failure()
    assert breaker.state == "open" and not breaker.ready()


def test_half_open_allows_one_probe_then_closes_or_reopens():
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock)
    breaker.failure()
    clock.now = 9.9
    assert not breaker.ready()
    clock.now = 10.0
    assert breaker.ready()
    breaker.picked()
    assert breaker.state == "half-open" and not breaker.ready()  # one probe at a time
    breaker.failure()
    assert breaker.state == "open" and not breaker.ready()  # cool-down restarts
    clock.now = 20.0
    breaker.picked()
    breaker.neutral()  # the client left: the probe slot frees, still half-open
    assert breaker.state == "half-open" and breaker.ready()
    breaker.picked()
    breaker.success()
    assert breaker.state == "closed" and breaker.ready()
