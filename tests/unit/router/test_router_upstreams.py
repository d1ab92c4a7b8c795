"""Endpoint choice: fewest outstanding, breakers, in-flight cap, and why there is no endpoint."""

from __future__ import annotations

import asyncio

from flotilla.api.routerconfig import CircuitBreakerSettings
from flotilla.router.upstreams import Endpoint, Pool, Upstreams

SETTINGS = CircuitBreakerSettings(failures=1, cooldown_seconds=60)


def test_pick_fewest_outstanding_and_rotate_ties():
    pool = Pool("m", SETTINGS)
    pool.set_endpoints(["http://a", "http://b/", "http://c"])
    a, b, c = pool.endpoints
    assert b.url == "http://b"
    a.outstanding, b.outstanding, c.outstanding = 2, 0, 1
    assert pool.pick(None) is b
    b.outstanding = 2
    c.outstanding = 2
    picks = {pool.pick(None).url for _ in range(3)}  # type: ignore[union-attr]
    assert picks == {"http://a", "http://b", "http://c"}


def test_reasons_cold_unavailable_overload():
    pool = Pool("m", SETTINGS)
    assert pool.pick(4) == "cold"
    pool.set_endpoints(["http://a"])
    pool.endpoints[0].outstanding = 4
    assert pool.pick(4) == "overload"
    assert isinstance(pool.pick(5), Endpoint)
    pool.endpoints[0].breaker.failure()
    assert pool.pick(5) == "unavailable"


def test_set_endpoints_keeps_counters_of_endpoints_that_stay():
    pool = Pool("m", SETTINGS)
    pool.set_endpoints(["http://a", "http://b"])
    pool.endpoints[0].outstanding = 3
    pool.set_endpoints(["http://c", "http://a"])
    assert [(e.url, e.outstanding) for e in pool.endpoints] == [("http://c", 0), ("http://a", 3)]
    assert pool.in_flight == 3


def test_registry_reuses_pools_and_forgets_removed_ones():
    upstreams = Upstreams()
    first = upstreams.pool("m", SETTINGS)
    assert upstreams.pool("m", CircuitBreakerSettings(failures=9)) is first
    assert first.breaker_settings.failures == 9
    upstreams.retain(["other"])
    assert "m" not in upstreams.pools


def test_wait_for_endpoints_wakes_on_change_or_times_out():
    async def scenario() -> tuple[bool, bool]:
        pool = Pool("m", SETTINGS)
        timed_out = await pool.wait_for_endpoints(0.05)
        asyncio.get_running_loop().call_later(0.05, pool.set_endpoints, ["http://a"])
        woke = await pool.wait_for_endpoints(5)
        return timed_out, woke

    assert asyncio.run(scenario()) == (False, True)


def test_endpoints_that_leave_are_reported_and_marked():
    gone: list[tuple[str, str]] = []
    upstreams = Upstreams(on_removed=lambda pool, url: gone.append((pool, url)))
    pool = upstreams.pool("m", SETTINGS)
    pool.set_endpoints(["http://a", "http://b"])
    a, b = pool.endpoints
    pool.set_endpoints(["http://b", "http://c"])
    assert gone == [("m", "http://a")] and a.removed and not b.removed
    upstreams.retain([])
    assert sorted(gone) == [("m", "http://a"), ("m", "http://b"), ("m", "http://c")]
