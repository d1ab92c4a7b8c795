"""Key lookup, route narrowing, budgets and token buckets: the pure parts of router access control."""

from __future__ import annotations

import asyncio
import hashlib
import inspect

import pytest

from flotilla.api.routerconfig import AccessConfig
from flotilla.api.spend import SpendFile
from flotilla.router import access, limiting, spending
from flotilla.router.replies import RequestError
from flotilla.router.routing import Route

CHAINS = {"chat": ("pod", "frontier"), "code": ("pod", "frontier")}
CLOUD = {"pod": False, "frontier": True}


def _keyring(**policies: dict[str, object]) -> access.Keyring:
    ring = access.Keyring(spending.Ledger("me-1"), _no_fetch)
    keys = [
        {"name": n, "sha256": hashlib.sha256(f"k-{n}".encode()).hexdigest(), **p} for n, p in policies.items()
    ]
    ring.update(AccessConfig.model_validate({"keys": keys}))
    return ring


async def _no_fetch(url: str) -> bytes:
    raise AssertionError("API keys fetch nothing")


def _admit(ring: access.Keyring, header: bytes | None, now: float) -> access.Grant:
    return asyncio.run(ring.admit(header, now))


def _raises(status: int, code: str, call: object, *args: object) -> RequestError:
    with pytest.raises(RequestError) as caught:
        result = call(*args)  # type: ignore[operator]
        if inspect.iscoroutine(result):
            asyncio.run(result)
    assert (caught.value.status, caught.value.code) == (status, code)
    return caught.value


def test_keys_are_found_by_hash_and_bearer_scheme_only() -> None:
    ring = _keyring(alice={})
    assert _admit(ring, b"Bearer k-alice", 0.0).name == "alice"
    assert _admit(ring, b"bearer   k-alice", 0.0).name == "alice"
    for header in (None, b"", b"k-alice", b"Basic k-alice", b"Bearer k-bob"):
        error = _raises(401, "invalid_api_key", ring.admit, header, 0.0)
        assert error.headers == {"www-authenticate": "Bearer"}


def test_a_policy_narrows_the_chain_and_downgrades_or_rejects_over_budget() -> None:
    ring = _keyring(
        local={},
        cloud={"cloudFallbacks": True, "monthlyBudgetUSD": 1.0},
        strict={"cloudFallbacks": True, "monthlyBudgetUSD": 1.0, "onBudgetExhausted": "reject"},
    )
    route = Route("chat", CHAINS["chat"], "alias")
    assert _admit(ring, b"Bearer k-local", 0).authorize(route, CHAINS, CLOUD)[0].chain == ("pod",)
    cloud = _admit(ring, b"Bearer k-cloud", 0)
    assert cloud.authorize(route, CHAINS, CLOUD) == (route, {})
    ring.ledger.add("cloud", 1.0)
    ring.ledger.add("strict", 2.0)
    narrowed, headers = cloud.authorize(Route("chat", ("frontier",), "model"), CHAINS, CLOUD)
    assert narrowed.chain == ("pod",) and headers == {"x-flotilla-budget": "exhausted"}
    error = _raises(
        429, "budget_exhausted", _admit(ring, b"Bearer k-strict", 0).authorize, route, CHAINS, CLOUD
    )
    assert int(error.headers["retry-after"]) > 0


def test_month_rollover_and_shared_spend_arithmetic() -> None:
    ledger = spending.Ledger("me-1")
    ledger.add("team", 2.0, "2026-12")
    assert ledger.spent("team", "2026-12") == 2.0
    # The operator counted 1.5 of this replica's 2.0 and 10.0 in all: 10.0 + the 0.5 not yet counted.
    ledger.shared = SpendFile(month="2026-12", totals={"team": 10.0}, counted={"me-1": {"team": 1.5}})
    assert ledger.spent("team", "2026-12") == 10.5
    assert ledger.spent("team", "2027-01") == 0.0  # a new month: the old file does not apply


def test_token_bucket_waits_refills_and_settles_into_debt() -> None:
    bucket = limiting.TokenBucket(60, now=0.0)  # one a second
    assert bucket.take(60, 0.0) == 0.0
    assert bucket.take(1, 0.0) == pytest.approx(1.0)
    assert bucket.take(1, 1.0) == 0.0
    bucket.adjust(10, 1.0)  # used ten more than charged
    assert bucket.take(1, 1.0) == pytest.approx(11.0)
    assert bucket.take(1000, 100.0) == 0.0  # larger than the allowance: let through once full
