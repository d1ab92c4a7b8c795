"""API keys over real HTTP: 401/403/429 with OpenAI-shaped bodies and Retry-After, cloud budgets that
downgrade to the fleet's own models or reject, and spend shared between two router processes through the
spend file the operator writes."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import time
from typing import Any

import httpx
import pytest
from routerkit import chat, fleet_config

from flotilla.accounting import ledgers
from flotilla.api.spend import SPEND_KEY

COMPLETIONS = "/v1/chat/completions"


def _key(name: str, **policy: Any) -> dict[str, Any]:
    """A key policy whose key is ``secret-<name>``."""
    return {"name": name, "sha256": hashlib.sha256(f"secret-{name}".encode()).hexdigest(), **policy}


def _config(pod_url: str | None, cloud_url: str, *keys: dict[str, Any], **access: Any) -> dict[str, Any]:
    config = fleet_config(pod_url, cloud_url)
    config["access"] = {"keys": list(keys), **access}
    return config


def _post(router: Any, key: str | None, body: dict[str, Any], **headers: str) -> httpx.Response:
    if key is not None:
        headers["authorization"] = f"Bearer secret-{key}"
    return httpx.post(f"{router.url}{COMPLETIONS}", json=body, headers=headers, timeout=30)


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    return error


def test_requests_without_a_valid_key_get_401(make_router, clean_flaky, cloud):
    router = make_router(_config(clean_flaky.url, cloud.url, _key("alice")))
    cases = [{}, {"authorization": "Basic c2VjcmV0LWFsaWNl"}, {"authorization": "Bearer secret-bob"}]
    for headers in cases:
        response = httpx.post(f"{router.url}{COMPLETIONS}", json=chat("hi"), headers=headers, timeout=30)
        error = _error(response, 401, "invalid_api_key")
        assert error["type"] == "authentication_error"
        assert response.headers["www-authenticate"] == "Bearer"
    assert _post(router, "alice", chat("hi")).status_code == 200
    assert clean_flaky.stats()["requests"] >= 1
    assert httpx.get(f"{router.url}/v1/models", timeout=5).status_code == 401
    listed = httpx.get(f"{router.url}/v1/models", headers={"authorization": "Bearer secret-alice"}, timeout=5)
    assert listed.status_code == 200 and listed.json()["object"] == "list"


def test_a_key_is_held_to_its_tasks_models_and_cloud_permission(make_router, clean_flaky, cloud):
    router = make_router(
        _config(clean_flaky.url, cloud.url, _key("local", tasks=["chat"]), _key("pods", models=["pod"]))
    )
    error = _error(_post(router, "local", chat("x"), **{"x-flotilla-task": "code"}), 403, "task_not_allowed")
    assert error["type"] == "permission_error"
    _error(_post(router, "local", chat("x", model="frontier")), 403, "cloud_not_allowed")
    _error(_post(router, "pods", chat("x", model="claude")), 403, "model_not_allowed")
    # No cloud permission: when the pod fails, the chat task does not fall back to frontier.
    before = cloud.stats()["requests"]
    clean_flaky.faults(status=503)
    response = _post(router, "local", chat("x"))
    assert response.status_code == 502, response.text
    assert cloud.stats()["requests"] == before
    clean_flaky.clear()
    ok = _post(router, "local", chat("x"))
    assert ok.status_code == 200 and ok.headers["x-flotilla-model"] == "pod"


def test_a_key_over_its_budget_is_served_locally_with_a_header(make_router, clean_flaky, cloud):
    router = make_router(
        _config(clean_flaky.url, cloud.url, _key("team", cloudFallbacks=True, monthlyBudgetUSD=0.00001)),
        admin=True,
    )
    first = _post(router, "team", chat("spend it", model="frontier"))
    assert first.status_code == 200 and first.headers["x-flotilla-model"] == "frontier"
    assert "x-flotilla-budget" not in first.headers
    second = _post(router, "team", chat("spend more", model="frontier"))
    assert second.status_code == 200, second.text
    assert second.headers["x-flotilla-budget"] == "exhausted"
    assert second.headers["x-flotilla-model"] == "pod"  # the task's own model instead of the cloud
    month = time.strftime("%Y-%m", time.gmtime())
    spent = [
        value
        for (name, labels), value in router.metrics().items()
        if name == "flotilla_router_key_cloud_spend_usd_total" and ("key", "team") in labels
        and ("month", month) in labels
    ]  # fmt: skip
    assert spent == [pytest.approx(float(first.headers["x-flotilla-cost-usd"]))]
    # The admin routes are on the admin port only.
    assert httpx.get(f"{router.url}/metrics", timeout=5).status_code == 404
    assert httpx.get(f"{router.url}/upstreams", timeout=5).status_code == 404
    assert httpx.get(f"{router.admin_url}/upstreams", timeout=5).status_code == 200


def test_a_rejecting_key_over_its_budget_gets_429_until_next_month(make_router, clean_flaky, cloud):
    policy = {"cloudFallbacks": True, "monthlyBudgetUSD": 0.00001, "onBudgetExhausted": "reject"}
    router = make_router(_config(clean_flaky.url, cloud.url, _key("strict", **policy)))
    assert _post(router, "strict", chat("spend it", model="frontier")).status_code == 200
    response = _post(router, "strict", chat("again", model="frontier"))
    error = _error(response, 429, "budget_exhausted")
    assert error["type"] == "rate_limit_error"
    assert 0 < int(response.headers["retry-after"]) <= 31 * 86400


def test_rate_limits_answer_429_with_retry_after(make_router, clean_flaky, cloud):
    router = make_router(
        _config(
            clean_flaky.url,
            cloud.url,
            _key("rpm", limits={"requestsPerMinute": 2}),
            _key("tpm", limits={"tokensPerMinute": 60}),
            _key("one", limits={"concurrentRequests": 1}),
        )
    )
    assert [_post(router, "rpm", chat("x")).status_code for _ in range(2)] == [200, 200]
    response = _post(router, "rpm", chat("x"))
    _error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["retry-after"]) <= 30  # one request refills in 30 s

    # Charged up front (prompt estimate + max_tokens), settled on the usage the model reports.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_post, router, "tpm", chat("[standin delay=1.5] big", max_tokens=50))
        time.sleep(0.5)
        response = _post(router, "tpm", chat("x", max_tokens=40))
        assert slow.result().status_code == 200
    _error(response, 429, "tokens_limited")
    assert int(response.headers["retry-after"]) >= 1
    assert _post(router, "tpm", chat("x", max_tokens=40)).status_code == 200  # the unused part came back

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(_post, router, "one", chat("[standin delay=1.5] slow one"))
        time.sleep(0.5)
        response = _post(router, "one", chat("fast one"))
        assert slow.result().status_code == 200
    _error(response, 429, "concurrency_limited")
    assert response.headers["retry-after"] == "1"
    assert _post(router, "one", chat("after")).status_code == 200  # the slot was given back


def test_two_routers_share_a_keys_spend_through_the_operators_spend_file(
    make_router, clean_flaky, cloud, tmp_path
):
    """The operator's side is ``accounting.ledgers`` (the same code the operator runs on the scraped
    metrics); here it is fed the two routers' admin /metrics and its file is written where both read it."""
    spend = tmp_path / SPEND_KEY
    budget = 0.00004
    policy = {"cloudFallbacks": True, "monthlyBudgetUSD": budget}
    config = _config(clean_flaky.url, cloud.url, _key("team", **policy), spendFile=str(spend))
    first = make_router(config, name="router-a", admin=True)
    second = make_router(config, name="router-b", admin=True)

    def aggregate(ledger: ledgers.FleetLedger) -> None:
        samples = [
            s for r in (first, second) for s in ledgers.parse(httpx.get(f"{r.admin_url}/metrics").text)
        ]
        ledger.observe(samples, time.strftime("%Y-%m", time.gmtime()), time.monotonic())
        spend.write_text(json.dumps(ledger.spend_file().model_dump()))

    ledger = ledgers.FleetLedger(time.strftime("%Y-%m", time.gmtime()))
    # Each router alone stays under the budget (about $0.00003 a request to frontier); together, over it.
    spent = float(_post(first, "team", chat("one", model="frontier")).headers["x-flotilla-cost-usd"])
    assert 0 < spent < budget
    aggregate(ledger)
    assert ledger.totals["team"] == pytest.approx(spent)
    time.sleep(0.6)  # the routers poll the file every 0.2 s in these tests
    response = _post(second, "team", chat("two", model="frontier"))
    assert response.headers["x-flotilla-model"] == "frontier" and "x-flotilla-budget" not in response.headers
    aggregate(ledger)
    aggregate(ledger)  # reading the same counters again adds nothing
    both = spent + float(response.headers["x-flotilla-cost-usd"])
    assert ledger.totals["team"] == pytest.approx(both) and both > budget
    time.sleep(0.6)
    for router in (first, second):  # both see the fleet-wide total, over the budget
        answer = _post(router, "team", chat("three", model="frontier"))
        assert answer.headers["x-flotilla-budget"] == "exhausted"
        assert answer.headers["x-flotilla-model"] == "pod"

    # A router process restarts: its counter starts again under a new replica id; nothing is lost.
    first.proc.stop()
    restarted = make_router(config, name="router-a2", admin=True)
    first = restarted
    aggregate(ledger)
    assert ledger.totals["team"] == pytest.approx(both)
    time.sleep(0.6)
    answer = _post(restarted, "team", chat("four", model="frontier"))
    assert answer.headers["x-flotilla-budget"] == "exhausted"
