"""How much a monotonic counter grew since it was last read: the one rule behind every total the operator
sums from its routers' Prometheus counters (spend in ``accounting.ledgers``, traces captured in
``promoting.counting``, shadow scores in ``promoting.tallies``).

Each router replica exports counters labelled with its replica id; the operator keeps, per replica, the
values it already added and adds only what is new. Hand-written because it is two lines, but they must be
the same two lines everywhere, or one total would count a restart differently from another.
"""

from __future__ import annotations

from typing import TypeVar

Number = TypeVar("Number", int, float)


def increase(now: Number, before: Number) -> Number:
    """What to add for a counter read as ``now`` that was last counted at ``before``. A value below
    ``before`` cannot happen within one replica id, so it is taken as a reset: all of it is new."""
    return now - before if now >= before else now


def increases(now: tuple[int, ...], before: tuple[int, ...]) -> tuple[int, ...]:
    """``increase`` for counters read together (e.g. scored, agreed, errors of one candidate): if any went
    back they were all reset, so all of them are new (a partial reset would pair one count's new life with
    another's old one)."""
    if any(n < b for n, b in zip(now, before, strict=True)):
        return now
    return tuple(n - b for n, b in zip(now, before, strict=True))
