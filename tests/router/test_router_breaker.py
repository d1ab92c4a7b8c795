"""The circuit breaker per upstream: opens after N consecutive failures, probes once after the cool-down."""

from __future__ import annotations

import copy
import threading
import time

import httpx
from routerkit import chat, fleet_config, write_config

STATE = "flotilla_router_circuit_state"


COOLDOWN = 3.0  # long enough that a loaded 2-core machine does not end it between two requests


def _router(make_router, flaky, cloud):
    config = fleet_config(flaky.url, cloud.url)
    config["circuitBreaker"] = {"failures": 3, "cooldownSeconds": COOLDOWN}
    return make_router(config)


def _ask(router, text: str = "hello") -> tuple[str, str]:
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat(text), timeout=30)
    assert response.status_code == 200, response.text
    return response.headers["x-flotilla-model"], response.headers["x-flotilla-route-reason"]


def test_open_half_open_close(make_router, clean_flaky, cloud):
    router = _router(make_router, clean_flaky, cloud)
    labels = {"model": "pod", "upstream": clean_flaky.url}
    clean_flaky.faults(status=500)
    before = clean_flaky.stats()["requests"]
    for _ in range(3):
        assert _ask(router) == ("frontier", "fallback:error")
    assert router.metric(STATE, **labels) == 2  # open
    for _ in range(3):  # open: the pod is not even tried
        assert _ask(router) == ("frontier", "fallback:unavailable")
    assert clean_flaky.stats()["requests"] == before + 3

    time.sleep(COOLDOWN + 0.2)  # cool-down over: the next request is the half-open probe, and it fails
    assert _ask(router) == ("frontier", "fallback:error")
    assert clean_flaky.stats()["requests"] == before + 4
    assert router.metric(STATE, **labels) == 2  # re-opened at once, without N more failures
    assert _ask(router) == ("frontier", "fallback:unavailable")

    clean_flaky.clear()
    time.sleep(COOLDOWN + 0.2)
    assert _ask(router) == ("pod", "default")  # the probe succeeds: closed
    assert router.metric(STATE, **labels) == 0
    assert _ask(router) == ("pod", "default")


def test_only_one_probe_while_half_open(make_router, clean_flaky, cloud):
    router = _router(make_router, clean_flaky, cloud)
    clean_flaky.faults(status=500, count=3)
    for _ in range(3):
        _ask(router)
    time.sleep(COOLDOWN + 0.2)
    clean_flaky.faults(delay=1.0, count=1)  # the probe is slow (but within the 2 s first-byte timeout)
    probe: list[tuple[str, str]] = []
    thread = threading.Thread(target=lambda: probe.append(_ask(router)))
    thread.start()
    time.sleep(0.4)
    assert _ask(router) == ("frontier", "fallback:unavailable")  # half-open: the probe has the only slot
    thread.join()
    assert probe == [("pod", "default")]
    assert _ask(router) == ("pod", "default")


def _circuit_series(router) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["model"], dict(labels)["upstream"]): value
        for (name, labels), value in router.metrics().items()
        if name == STATE
    }


def _reload(router, config, reloads: float) -> None:
    write_config(router.config_path, config)
    deadline = time.monotonic() + 10
    while router.metric("flotilla_router_config_reloads_total", result="ok") < reloads + 1:
        assert time.monotonic() < deadline, "config was not reloaded"
        time.sleep(0.1)


def test_circuit_state_of_gone_endpoints_is_removed(make_router, clean_flaky, cloud):
    """A pod that left (discovery or reload) must not keep its circuit-state series in /metrics forever."""
    config = fleet_config(clean_flaky.url, cloud.url)
    router = make_router(config)
    assert httpx.post(f"{router.url}/v1/chat/completions", json=chat("hi"), timeout=30).is_success
    assert ("pod", clean_flaky.url) in _circuit_series(router)

    moved = copy.deepcopy(config)
    moved["models"][0]["endpoints"] = [cloud.url]  # the pod was replaced by another one
    _reload(router, moved, 0)
    assert httpx.post(f"{router.url}/v1/chat/completions", json=chat("hi"), timeout=30).is_success
    series = _circuit_series(router)
    assert ("pod", clean_flaky.url) not in series
    assert ("pod", cloud.url) in series

    dropped = copy.deepcopy(moved)
    dropped["models"] = []  # the model left the fleet
    for task in dropped["tasks"]:
        task["models"] = []
    _reload(router, dropped, 1)
    assert not [key for key in _circuit_series(router) if key[0] == "pod"]
