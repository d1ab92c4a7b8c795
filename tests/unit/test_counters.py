"""The one rule for summing routers' monotonic counters (``flotilla.counters``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotilla.accounting.ledgers import FleetLedger, Sample
from flotilla.counters import increase, increases


def test_growth_is_added_and_a_value_below_the_last_is_a_reset() -> None:
    assert increase(7, 5) == 2
    assert increase(5, 5) == 0
    assert increase(3, 5) == 3
    assert increase(0.75, 0.25) == pytest.approx(0.5)


def test_counters_read_together_reset_together() -> None:
    assert increases((5, 3, 1), (2, 2, 0)) == (3, 1, 1)
    assert increases((1, 4, 0), (2, 2, 0)) == (1, 4, 0)  # one went back: all are new


@given(st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=30))
def test_summed_increases_equal_the_work_done_across_resets(steps: list[int]) -> None:
    """A counter that grows by each step and resets to zero before every 0 step: the sum of increases
    read after each step is the total grown (resets lose nothing when read between them)."""
    counter, counted, total = 0, 0, 0
    for step in steps:
        counter = 0 if step == 0 else counter + step
        total += increase(counter, counted)
        counted = counter
    assert total == sum(steps)


def test_a_spend_counter_reset_to_zero_counts_from_zero_next_time() -> None:
    ledger = FleetLedger("2026-12")
    ledger.observe([Sample("a-1", "team", "2026-12", 10.0)], "2026-12", 0.0)
    assert ledger.observe([Sample("a-1", "team", "2026-12", 0.0)], "2026-12", 1.0)
    ledger.observe([Sample("a-1", "team", "2026-12", 12.0)], "2026-12", 2.0)
    assert ledger.totals["team"] == pytest.approx(22.0)
