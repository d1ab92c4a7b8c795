"""The applier's report line (its I/O is exercised on the real cluster by tests/integration)."""

from __future__ import annotations

from flotilla.reconcile import applying


def test_outcome_describe() -> None:
    listed = applying.Outcome(applied=8, changed=(("v1", "Service", "a"),), pruned=(("v1", "Service", "b"),))
    assert listed.describe() == "1 children changed, 7 unchanged, 1 pruned"
    first = applying.Outcome(applied=8, changed=None, pruned=())
    assert first.describe() == "8 children applied (first generation: nothing to prune)"
