"""The scaling arithmetic, pure: window-averaged load → a replica recommendation → a stabilised decision.

No I/O and no clock of its own: every call takes ``now`` (seconds, any monotonic origin), so tests drive it
with a fake clock, table-driven. The rules follow the Kubernetes HPA where it has one:

- load = in-flight + queued requests summed over the router pods, averaged over ``window``;
- recommendation = ceil(load / target_in_flight), kept at the current count when within ``tolerance`` of it
  (the HPA's 10 % dead band: a steady load near a boundary does not flap), bounded by min/max;
- scale-up takes the *lowest* recommendation of the last ``up_delay`` (0 = at once), scale-down the
  *highest* of the last ``down_delay`` (the HPA's stabilisation windows), so replicas only fall after load
  stayed low for the whole delay;
- queued demand while at zero replicas → 1 at once, whatever the windows say (a cold model must start);
- cold requests counted since the last tick (held too briefly for a scrape to see, or spilled at once)
  are demand for that tick only: at zero replicas → 1 at once, and the tick's recommendation is at least
  1, so scale-down waits a full ``down_delay`` after the last one (the model stays warm for the next
  requests); they never enter the load window, so they cannot push replicas beyond 1.
"""

from __future__ import annotations

import collections
import dataclasses
import math

EPSILON = 1e-9
"""Float slack so 16.000000001 / 8 does not become 3 replicas."""


@dataclasses.dataclass(frozen=True)
class Policy:
    """How one model scales (from its ``autoscaling`` and ``replicas`` spec)."""

    min_replicas: int
    """Lowest count; 0 lets the model park when idle."""
    max_replicas: int
    """Highest count."""
    target_in_flight: float
    """Concurrent requests (in-flight + queued) one replica should carry."""
    window: float = 30.0
    """Seconds of samples averaged into the load."""
    up_delay: float = 0.0
    """Seconds a higher recommendation must persist before scaling up (0 = at once)."""
    down_delay: float = 300.0
    """Seconds of lower recommendations before scaling down."""
    tolerance: float = 0.1
    """Relative dead band around the current count in which the recommendation stays put."""


@dataclasses.dataclass(frozen=True)
class Decision:
    """One tick's outcome and its inputs (they go into Events and the fleet status)."""

    current: int
    """Replicas the Deployment had."""
    desired: int
    """Replicas it should have now."""
    load: float
    """Window-averaged in-flight + queued requests."""
    recommendation: int
    """What this tick's load (and cold requests) alone ask for (before stabilisation)."""
    reason: str
    """CamelCase: ScaleUp, ScaleDown, ColdStart, Steady, BelowMin, AboveMax or NoData."""

    @property
    def changed(self) -> bool:
        """True when the Deployment must be scaled."""
        return self.desired != self.current


def recommend(load: float, current: int, policy: Policy) -> int:
    """Replicas for ``load`` alone: ceil(load / target) with the dead band, bounded by min/max."""
    if load <= EPSILON:
        raw = 0
    elif current > 0 and abs(load / (current * policy.target_in_flight) - 1.0) <= policy.tolerance:
        raw = current
    else:
        raw = math.ceil(load / policy.target_in_flight - EPSILON)
    return max(policy.min_replicas, min(policy.max_replicas, raw))


class Recommender:
    """Per-model state across ticks: load samples in the window and recent recommendations."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._samples: collections.deque[tuple[float, float]] = collections.deque()
        self._history: collections.deque[tuple[float, int]] = collections.deque()
        self._queued = 0.0
        self._cold = 0.0
        self._seed: tuple[float, int] | None = None

    def observe(self, now: float, in_flight: float, queued: float = 0.0, cold: float = 0.0) -> None:
        """Record one scrape (already summed over the router pods that answered); ``cold`` is the number
        of requests that found the model cold since the previous scrape, used by the next decision only."""
        self._samples.append((now, max(0.0, in_flight) + max(0.0, queued)))
        self._queued = max(0.0, queued)
        self._cold = max(0.0, cold)

    def load(self, now: float) -> float | None:
        """Average of the samples in the window ending at ``now``; None when there are none (no router
        answered for a whole window: the decision then holds the replicas within bounds)."""
        while self._samples and self._samples[0][0] <= now - self.policy.window:
            self._samples.popleft()
        if not self._samples:
            self._queued = 0.0
            return None
        return sum(load for _, load in self._samples) / len(self._samples)

    def decide(self, now: float, current: int) -> Decision:
        """The replicas the model should have at ``now``, given it has ``current``."""
        policy = self.policy
        bounded = max(policy.min_replicas, min(policy.max_replicas, current))
        if self._seed is None:  # first sight (or operator restart): hold today's replicas for a full
            self._seed = (now, bounded)  # down_delay before removing any (the load history is lost)
        load = self.load(now)
        cold, self._cold = self._cold, 0.0  # one tick's worth: a tick without a scrape sees none
        if load is None:
            reason = "BelowMin" if bounded > current else "AboveMax" if bounded < current else "NoData"
            return Decision(current, bounded, 0.0, bounded, reason)
        raw = recommend(load, current, policy)
        if cold > 0:
            raw = max(raw, min(1, policy.max_replicas))
        self._history.append((now, raw))
        horizon = max(policy.up_delay, policy.down_delay)
        while self._history and self._history[0][0] < now - horizon:
            self._history.popleft()
        up = min(r for t, r in self._history if t >= now - policy.up_delay)
        down = max(r for t, r in self._history if t >= now - policy.down_delay)
        if self._seed[0] >= now - policy.down_delay:
            down = max(down, self._seed[1])
        desired = bounded
        if desired < up:
            desired = up
        if desired > down:
            desired = down
        if current == 0 and (self._queued > 0 or cold > 0) and policy.max_replicas > 0:
            desired = max(desired, 1)
        return Decision(current, desired, load, raw, _reason(current, desired, bounded))

    def retune(self, policy: Policy) -> None:
        """Adopt a changed spec, keeping the history (a spec edit is not a restart)."""
        self.policy = policy


def _reason(current: int, desired: int, bounded: int) -> str:
    if desired == current:
        return "Steady"
    if current == 0:
        return "ColdStart"
    if desired == bounded:
        return "BelowMin" if bounded > current else "AboveMax"
    return "ScaleUp" if desired > current else "ScaleDown"
