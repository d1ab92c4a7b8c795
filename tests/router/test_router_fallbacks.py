"""Each fallback trigger, against real processes: a stand-in playing the model's pod, a stand-in cloud."""

from __future__ import annotations

import threading
import time

import httpx
from routerkit import chat, fleet_config, free_port, sse_events, write_config


def _served(response: httpx.Response) -> tuple[str, str]:
    return response.headers["x-flotilla-model"], response.headers["x-flotilla-route-reason"]


def test_healthy_pod_serves(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert response.status_code == 200
    assert _served(response) == ("pod", "default")
    assert response.json()["model"] == "pod-model"  # servedModelName was sent upstream


def test_unavailable_no_endpoint(make_router, cloud):
    router = make_router(fleet_config(None, cloud.url))
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert response.status_code == 200
    assert _served(response) == ("frontier", "fallback:unavailable")
    assert "[flotilla stand-in provider]" in response.json()["choices"][0]["message"]["content"]
    fallbacks = router.metric(
        "flotilla_router_fallbacks_total", model="pod", task="chat", reason="unavailable"
    )
    assert fallbacks == 1


def test_error_5xx_and_connect_error(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    clean_flaky.faults(status=500, count=1)
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert _served(response) == ("frontier", "fallback:error")
    dead = make_router(fleet_config(f"http://127.0.0.1:{free_port()}", cloud.url), name="dead")
    response = httpx.post(f"{dead.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert _served(response) == ("frontier", "fallback:error")


def test_timeout_before_first_byte(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url, firstByteTimeoutSeconds=0.5))
    clean_flaky.faults(delay=3)
    started = time.monotonic()
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert _served(response) == ("frontier", "fallback:timeout")
    assert time.monotonic() - started < 2.5


def test_overload_over_in_flight_cap(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url, maxInFlight=1))
    body = chat("slow [standin chunk_delay=0.2 chunks=15]", stream=True, max_tokens=20)
    with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as held:
        assert held.headers["x-flotilla-model"] == "pod"
        lines = held.iter_lines()  # keep a reference: a dropped iterator closes the stream
        next(lines)  # the pod's only slot is taken while this stream runs
        assert router.metric("flotilla_router_in_flight", model="pod") == 1
        response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
        assert _served(response) == ("frontier", "fallback:overload")
        assert sse_events(list(lines))[-1] == "[DONE]"
    assert router.metric("flotilla_router_in_flight", model="pod") == 0


def test_cold_holds_for_budget_then_falls_back(make_router, cloud):
    router = make_router(fleet_config(None, cloud.url, scaleFromZero=True))
    queued: list[float] = []

    def watch_queue() -> None:
        time.sleep(0.5)
        queued.append(router.metric("flotilla_router_queued", model="pod"))

    watcher = threading.Thread(target=watch_queue)
    watcher.start()
    started = time.monotonic()
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    held = time.monotonic() - started
    watcher.join()
    assert _served(response) == ("frontier", "fallback:cold")
    assert 0.9 <= held < 3.0  # coldStartBudgetSeconds: 1.0
    assert queued == [1.0]
    assert router.metric("flotilla_router_queued", model="pod") == 0


def test_cold_request_served_when_a_pod_appears(make_router, clean_flaky, cloud):
    config = fleet_config(None, cloud.url, scaleFromZero=True)
    config["coldStartBudgetSeconds"] = 10.0
    router = make_router(config)
    warm = fleet_config(clean_flaky.url, cloud.url, scaleFromZero=True)
    warm["coldStartBudgetSeconds"] = 10.0
    threading.Timer(1.0, write_config, (router.config_path, warm)).start()
    started = time.monotonic()
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert _served(response) == ("pod", "default")
    assert 1.0 <= time.monotonic() - started < 5.0


def test_reason_not_in_fallback_on_ends_the_chain(make_router, clean_flaky, cloud):
    config = fleet_config(clean_flaky.url, cloud.url)
    config["fallbackOn"] = ["unavailable"]
    router = make_router(config)
    clean_flaky.faults(status=503)
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error" and "pod answered HTTP 503" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_garbage_falls_back_or_is_a_502(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    clean_flaky.faults(garbage=1)
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert _served(response) == ("frontier", "fallback:error")
    alone = fleet_config(clean_flaky.url, cloud.url)
    alone["tasks"][0]["fallbacks"] = []
    router = make_router(alone, name="alone")
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert response.status_code == 502
    assert "not a valid completion" in response.json()["error"]["message"]


def test_stream_dropped_before_first_event_falls_back(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    clean_flaky.faults(drop_after=0)
    with httpx.stream(
        "POST", f"{router.url}/v1/chat/completions", json=chat("hi", stream=True), timeout=30
    ) as response:
        assert _served(response) == ("frontier", "fallback:error")
        events = sse_events(list(response.iter_lines()))
    assert events[-1] == "[DONE]"


def test_stream_dropped_mid_way_ends_with_an_error_event(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    clean_flaky.faults(drop_after=2)
    with httpx.stream(
        "POST", f"{router.url}/v1/chat/completions", json=chat("hi there", stream=True), timeout=30
    ) as response:
        assert _served(response) == ("pod", "default")  # the first bytes came from the pod: no fallback now
        events = sse_events(list(response.iter_lines()))
    assert '"stream_broken"' in events[-1] and "[DONE]" not in events
    assert router.metric("flotilla_router_requests_total", model="pod", task="chat", outcome="error") == 1


def test_plain_answer_cut_off_falls_back(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    clean_flaky.faults(drop_after=0, count=1)
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello"), timeout=30)
    assert response.status_code == 200
    assert _served(response) == ("frontier", "fallback:error")
