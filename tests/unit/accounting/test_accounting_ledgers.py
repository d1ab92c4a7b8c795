"""The operator's spend arithmetic: increases only, across router restarts, operator restarts and months."""

from __future__ import annotations

import pytest

from flotilla.accounting.ledgers import FORGET_AFTER, FleetLedger, Sample, parse


def test_only_increases_are_added_and_restarted_routers_are_new_replicas() -> None:
    ledger = FleetLedger("2026-12")
    assert ledger.observe([Sample("a-1", "team", "2026-12", 1.0)], "2026-12", 0.0)
    assert not ledger.observe([Sample("a-1", "team", "2026-12", 1.0)], "2026-12", 1.0)
    ledger.observe(
        [Sample("a-1", "team", "2026-12", 1.5), Sample("b-1", "team", "2026-12", 2.0)], "2026-12", 2
    )
    assert ledger.totals == {"team": pytest.approx(3.5)}
    # Pod a restarts: a new replica id whose counter starts at 0.
    ledger.observe([Sample("a-2", "team", "2026-12", 0.25)], "2026-12", 3.0)
    assert ledger.totals["team"] == pytest.approx(3.75)
    assert ledger.spend_file().counted == {"a-1": {"team": 1.5}, "b-1": {"team": 2.0}, "a-2": {"team": 0.25}}


def test_an_operator_restart_resumes_from_status_without_counting_twice() -> None:
    ledger = FleetLedger("2026-12")
    ledger.observe([Sample("a-1", "team", "2026-12", 1.0)], "2026-12", 0.0)
    status = ledger.to_status({"team": 5.0, "idle": None})
    assert status["summary"] == "team=$1.00,idle=$0.00"
    assert status["keys"] == [
        {"name": "team", "spentUSD": 1.0, "budgetUSD": 5.0},
        {"name": "idle", "spentUSD": 0.0},
    ]
    resumed = FleetLedger.from_status(status, "2026-12", 100.0)
    resumed.observe([Sample("a-1", "team", "2026-12", 1.25)], "2026-12", 101.0)
    assert resumed.totals["team"] == pytest.approx(1.25)
    assert FleetLedger.from_status(status, "2027-01", 0.0).totals == {}


def test_a_new_month_starts_from_zero_and_old_replicas_are_forgotten() -> None:
    ledger = FleetLedger("2026-12")
    ledger.observe([Sample("a-1", "team", "2026-12", 3.0)], "2026-12", 0.0)
    ledger.observe(
        [Sample("a-1", "team", "2026-12", 3.0), Sample("a-1", "team", "2027-01", 0.5)], "2027-01", 1
    )
    assert ledger.month == "2027-01" and ledger.totals == {"team": 0.5}
    ledger.observe([], "2027-01", 2 + FORGET_AFTER)
    assert ledger.counted == {} and ledger.totals == {"team": 0.5}


def test_parse_reads_the_router_counter() -> None:
    text = (
        "# TYPE flotilla_router_key_cloud_spend_usd counter\n"
        'flotilla_router_key_cloud_spend_usd_total{key="team",month="2026-12",replica="r-1"} 0.5\n'
        'flotilla_router_in_flight{model="pod"} 1\n'
    )
    assert parse(text) == [Sample("r-1", "team", "2026-12", 0.5)]
