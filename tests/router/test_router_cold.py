"""The cold-requests counter against real processes: a real router with no pod for a scale-from-zero model
and a stand-in cloud as the fallback. The autoscaler reads this counter's increase, so it must count every
request that found the model cold, whether it was held or spilled at once."""

from __future__ import annotations

import httpx
import pytest
from routerkit import chat, fleet_config

COLD = "flotilla_router_cold_requests_total"
SPILLED = "flotilla_router_fallbacks_total"


def _post(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=chat("hello"), timeout=30)


@pytest.mark.parametrize("budget", [0.0, 0.3])
def test_cold_spill_counts_the_request_as_cold(make_router, cloud, budget: float) -> None:
    config = fleet_config(None, cloud.url, scaleFromZero=True)
    config["coldStartBudgetSeconds"] = budget
    router = make_router(config)
    assert router.metric(COLD, model="pod") == 0
    for expected in (1, 2):
        response = _post(router.url)
        assert response.status_code == 200
        assert response.headers["x-flotilla-route-reason"] == "fallback:cold"
        assert response.headers["x-flotilla-model"] == "frontier"
        assert router.metric(COLD, model="pod") == expected
        assert response.elapsed.total_seconds() >= budget  # held for the budget (none with 0)
    assert router.metric(SPILLED, model="pod", task="chat", reason="cold") == 2
    assert router.metric("flotilla_router_queued", model="pod") == 0  # nothing held any more
    assert router.metric(COLD, model="frontier") == 0  # the fallback served: not cold


def test_a_model_without_scale_from_zero_is_unavailable_not_cold(make_router, cloud) -> None:
    router = make_router(fleet_config(None, cloud.url))
    response = _post(router.url)
    assert response.headers["x-flotilla-route-reason"] == "fallback:unavailable"
    assert router.metric(COLD, model="pod") == 0
    assert router.metric(SPILLED, model="pod", task="chat", reason="unavailable") == 1
