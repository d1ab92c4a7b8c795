"""A circuit breaker per upstream (pod or provider): stop sending to something that keeps failing.

closed ──N consecutive failures──▶ open ──cool-down over, next pick──▶ half-open (one probe in flight)
half-open ──probe succeeds──▶ closed;  half-open ──probe fails──▶ open (cool-down restarts)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half-open"]
STATE_VALUES: dict[State, int] = {"closed": 0, "half-open": 1, "open": 2}


class CircuitBreaker:
    """Consecutive-failure breaker. Not thread-safe: used only on the event loop."""

    __slots__ = ("_clock", "_consecutive", "_opened_at", "_probing", "cooldown", "failures", "state")

    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self.state: State = "closed"
        self._clock = clock
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False

    def ready(self) -> bool:
        """Whether a request may be sent now (does not change state; ``picked`` does)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return self._clock() - self._opened_at >= self.cooldown
        return not self._probing

    def picked(self) -> None:
        """A request is about to go: after the cool-down it becomes the half-open probe."""
        if self.state == "open" or self.state == "half-open":
            self.state = "half-open"
            self._probing = True

    def success(self) -> None:
        self.state = "closed"
        self._consecutive = 0
        self._probing = False

    def failure(self) -> None:
        self._consecutive += 1
        if self.state == "half-open" or self._consecutive >= self.failures:
            self.state = "open"
            self._opened_at = self._clock()
        self._probing = False

    def neutral(self) -> None:
        """The request ended without telling health (client went away, 4xx): free the probe slot."""
        self._probing = False
