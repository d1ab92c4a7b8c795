"""Token buckets for per-key rate limits (requests per minute, tokens per minute).

A bucket holds up to its per-minute allowance and refills continuously. Taking from it either succeeds or
says how long to wait (the ``Retry-After`` a client gets). Token charges are made up front from an estimate
and settled afterwards with :meth:`TokenBucket.adjust`, which may leave the bucket in debt: a key that used
more than it declared waits longer next time. Time is passed in (``time.monotonic()``) so tests need no
clock.
"""

from __future__ import annotations


class TokenBucket:
    """``per_minute`` units a minute, bursts up to ``per_minute``."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, amount: float, now: float) -> float:
        """Take ``amount``; 0.0 when taken, else the seconds until it could be (nothing taken then).

        An amount larger than the whole allowance is let through once the bucket is full (into debt), so a
        big request is slowed, never refused forever.
        """
        self._refill(now)
        needed = min(amount, self.capacity)
        if self.level >= needed:
            self.level -= amount
            return 0.0
        return (needed - self.level) / self.rate

    def adjust(self, amount: float, now: float) -> None:
        """Take ``amount`` more (negative: give back) without waiting: the settlement of an estimate."""
        self._refill(now)
        self.level = min(self.capacity, self.level - amount)
