"""A client that goes away mid-stream cancels the upstream request (the upstream sees the socket close)."""

from __future__ import annotations

import time

import httpx
import pytest
from routerkit import chat, fleet_config


def test_client_disconnect_closes_upstream(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    before = clean_flaky.stats()
    body = chat("long [standin chunk_delay=0.2 chunks=100]", model="chat", stream=True, max_tokens=100)
    with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(4)]
        assert clean_flaky.stats()["active_streams"] == before["active_streams"] + 1
    assert any(line.startswith("data:") for line in received)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and clean_flaky.stats()["disconnects"] == before["disconnects"]:
        time.sleep(0.1)
    after = clean_flaky.stats()
    assert after["disconnects"] == before["disconnects"] + 1  # the stand-in saw its client (the router) leave
    assert after["active_streams"] == before["active_streams"]
    assert after["streams_completed"] == before["streams_completed"]
    assert router.metric("flotilla_router_requests_total", model="pod", task="chat", outcome="cancelled") == 1
    assert router.metric("flotilla_router_in_flight", model="pod") == 0


def test_client_disconnect_closes_a_non_streamed_upstream_request(make_router, clean_flaky, cloud):
    """A plain (non-streamed) request whose client leaves is cancelled too: the model stops generating."""
    router = make_router(fleet_config(clean_flaky.url, cloud.url, firstByteTimeoutSeconds=30.0))
    before = clean_flaky.stats()
    body = chat("slow [standin delay=8]", model="pod")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{router.url}/v1/chat/completions", json=body, timeout=1.0)
    deadline = time.monotonic() + 4  # well before the stand-in's 8 s answer
    while time.monotonic() < deadline and clean_flaky.stats()["disconnects"] == before["disconnects"]:
        time.sleep(0.1)
    assert clean_flaky.stats()["disconnects"] == before["disconnects"] + 1
    assert router.metric("flotilla_router_requests_total", model="pod", task="chat", outcome="cancelled") == 1
    assert router.metric("flotilla_router_in_flight", model="pod") == 0
    assert "Traceback" not in router.proc.log()
    assert httpx.post(f"{router.url}/v1/chat/completions", json=chat("hi"), timeout=30).is_success
