"""A pack pod's loss falls back for every model it serves, and they come back with it: a real router in
front of a real ``flotilla pack-serve`` (Ray Serve, two names for the Gemma 3 270M GGUF) and the stand-in
cloud as the fallback. Each packed model's upstream is the pack's URL plus ``/<model>``, as the operator
renders it (``render.routing``); the router needs no pack-specific logic.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RouterFactory, Standin
from packkit import PackServe
from routerkit import chat

pytestmark = [pytest.mark.llamacpp, pytest.mark.timeout(1200)]

NAMES = ("alpha", "beta")


def _config(gguf: Path) -> dict[str, Any]:
    return {
        "models": [
            {"name": name, "gguf": str(gguf), "contextLength": 512, "threads": 1, "chatFormat": "gemma"}
            for name in NAMES
        ]
    }


def _router_config(pack_url: str, cloud_url: str) -> dict[str, Any]:
    return {
        "fleet": "packed",
        "defaultTask": "chat",
        "tasks": [{"name": "chat", "models": list(NAMES), "fallbacks": ["frontier"]}],
        "models": [
            {
                "name": name,
                "servedModelName": name,
                "endpoints": [f"{pack_url}/{name}"],
                "firstByteTimeoutSeconds": 120,
                "timeoutSeconds": 300,
            }
            for name in NAMES
        ],
        "fallbacks": [
            {"name": "frontier", "provider": "openai", "baseURL": f"{cloud_url}/v1", "model": "gpt-standin"}
        ],
        "circuitBreaker": {"failures": 1, "cooldownSeconds": 2},
    }


def _served(client: httpx.Client, name: str) -> tuple[str, str]:
    response = client.post("/v1/chat/completions", json={**chat("Say hi"), "model": name})
    assert response.status_code == 200, response.text
    return response.headers["x-flotilla-model"], response.headers["x-flotilla-route-reason"]


def test_losing_the_pack_falls_back_for_all_its_models_and_they_come_back(
    logs_dir: Path, gguf: Path, make_router: RouterFactory, cloud: Standin
) -> None:
    if importlib.util.find_spec("ray") is None:
        pytest.fail("ray[serve] is not installed: pip install -e '.[ray]' (scripts/test --setup-only does)")
    pack = PackServe(logs_dir, _config(gguf), name="pack-lost")
    try:
        pack.wait_ready()
        router = make_router(_router_config(pack.url, cloud.url))
        with router.client(timeout=300) as client:
            assert [_served(client, name)[0] for name in NAMES] == list(NAMES)
            assert pack.stop() == []  # the pack's pod is gone: every process of it
            for name in NAMES:
                served, reason = _served(client, name)
                assert served == "frontier" and reason.startswith("fallback:"), (name, served, reason)
                assert (
                    router.metric(
                        "flotilla_router_fallbacks_total", model=name, task="chat", reason=reason[9:]
                    )
                    >= 1
                )
            pack = PackServe(logs_dir, _config(gguf), name="pack-back", port=pack.port)  # the pod comes back
            pack.wait_ready()
            deadline = time.monotonic() + 60  # the breakers' cooldown passes, the next request probes
            for name in NAMES:
                while (served := _served(client, name)[0]) != name:
                    assert time.monotonic() < deadline, f"{name} still served by {served}"
                    time.sleep(1)
    finally:
        leftovers = pack.stop()
    assert leftovers == []
