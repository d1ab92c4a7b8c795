"""The `ray` runtime's server: three models (one Gemma 3 270M GGUF under three names and settings) packed
into one ``flotilla pack-serve`` process with Ray Serve, queried directly and through a real router.

``maxLoaded: 2``: the third model starts unloaded; a request for it is held while the least recently used
idle model is unloaded and it is loaded, then answered. Fails (never skips) without ``ray[serve]``.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RouterFactory
from packkit import PackServe
from routerkit import chat, sse_events

pytestmark = [pytest.mark.llamacpp, pytest.mark.timeout(900)]

MODELS = [("alpha", 1024), ("beta", 2048), ("gamma", 512)]  # name, contextLength


@pytest.fixture(scope="module")
def pack(logs_dir: Path, gguf: Path) -> Iterator[PackServe]:
    if importlib.util.find_spec("ray") is None:
        pytest.fail("ray[serve] is not installed: pip install -e '.[ray]' (scripts/test --setup-only does)")
    config = {
        "maxLoaded": 2,
        "models": [
            {"name": name, "gguf": str(gguf), "contextLength": ctx, "threads": 1, "chatFormat": "gemma"}
            for name, ctx in MODELS
        ],
    }
    server = PackServe(logs_dir, config)
    try:
        server.wait_ready()
        yield server
    finally:
        leftovers = server.stop()
    assert leftovers == [], f"pack-serve left processes after SIGTERM: {leftovers}"
    assert server.pids() == []


def loaded(pack: PackServe) -> dict[str, bool]:
    body = httpx.get(f"{pack.url}/v1/models", timeout=10).json()
    return {m["id"]: m["loaded"] for m in body["data"]}


def ask(url: str, **extra: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=chat("Say hi", **extra), timeout=300)


def test_every_model_answers_under_its_own_name(pack: PackServe) -> None:
    assert loaded(pack) == {"alpha": True, "beta": True, "gamma": False}
    for name, _ in MODELS:
        response = ask(f"{pack.url}/{name}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == name
        assert body["choices"][0]["message"]["content"]
        assert 0 < body["usage"]["completion_tokens"] <= 8


def test_streams_are_openai_sse(pack: PackServe) -> None:
    for kind, payload in (
        ("chat/completions", chat("Count to three")),
        ("completions", {"prompt": "Once upon a time", "max_tokens": 6}),
    ):
        with httpx.stream(
            "POST", f"{pack.url}/beta/v1/{kind}", json={**payload, "stream": True}, timeout=300
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(list(response.iter_lines()))
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert len(chunks) >= 2 and all(c["model"] == "beta" for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_a_client_leaving_mid_stream_ends_the_generation(pack: PackServe) -> None:
    """Before the engine lock and the cancellable stream, the next request ran beside the abandoned
    generation in one llama.cpp context and the replica died (SIGABRT): a 503, then a 20 s wait."""
    with (
        httpx.Client(timeout=300) as client,
        client.stream(
            "POST",
            f"{pack.url}/beta/v1/completions",
            json={"prompt": "Tell a long story", "max_tokens": 400, "stream": True},
        ) as response,
    ):
        assert response.status_code == 200
        next(response.iter_lines())  # one chunk, then the connection is closed
    started = time.monotonic()
    after = httpx.post(f"{pack.url}/beta/v1/completions", json={"prompt": "Hi", "max_tokens": 2}, timeout=300)
    assert after.status_code == 200, after.text
    assert after.json()["model"] == "beta"
    assert time.monotonic() - started < 10  # not behind the rest of the 400 tokens


def test_least_recently_used_model_is_unloaded_and_an_evicted_model_is_held_and_answered(
    pack: PackServe,
) -> None:
    for name in ("alpha", "beta"):  # gamma is now the least recently used
        assert ask(f"{pack.url}/{name}").status_code == 200
    assert loaded(pack) == {"alpha": True, "beta": True, "gamma": False}
    response = ask(f"{pack.url}/gamma")  # held while alpha is unloaded and gamma loaded
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "gamma"
    assert loaded(pack) == {"alpha": False, "beta": True, "gamma": True}


def test_through_the_router(pack: PackServe, make_router: RouterFactory) -> None:
    names = [name for name, _ in MODELS]
    router = make_router(
        {
            "fleet": "packed",
            "defaultTask": "chat",
            "tasks": [{"name": "chat", "models": names}],
            "models": [
                {
                    "name": name,
                    "servedModelName": name,
                    "endpoints": [f"{pack.url}/{name}"],  # the pack's route prefix per model
                    "firstByteTimeoutSeconds": 300,
                    "timeoutSeconds": 300,
                }
                for name in names
            ],
            "coldStartBudgetSeconds": 300,
        }
    )
    with router.client(timeout=300) as client:
        for name in [*names, "alpha"]:  # the last alpha was evicted by gamma's load: held and answered
            response = client.post("/v1/chat/completions", json={**chat("Say hi"), "model": name})
            assert response.status_code == 200, response.text
            assert response.headers["x-flotilla-model"] == name
            assert response.json()["model"] == name
        with client.stream(
            "POST", "/v1/chat/completions", json={**chat("Say hi"), "model": "gamma", "stream": True}
        ) as streamed:
            assert streamed.status_code == 200
            events = sse_events(list(streamed.iter_lines()))
        assert events[-1] == "[DONE]"
        assert json.loads(events[0])["model"] == "gamma"


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("alpha/v1/chat/completions", b"{not json", 400, None),
        ("alpha/v1/chat/completions", b'{"messages": []}', 400, "messages"),
        ("alpha/v1/chat/completions", b'{"messages": "hi"}', 400, "messages"),
        ("alpha/v1/chat/completions", b'{"messages": [{"content": "hi"}]}', 400, "messages"),
        (
            "alpha/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "8"}',
            400,
            "max_tokens",
        ),
        ("alpha/v1/completions", b'{"max_tokens": 4}', 400, "prompt"),
        ("alpha/v1/completions", b'{"prompt": [true], "max_tokens": 4}', 400, "prompt"),
        ("zeta/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}]}', 404, "model"),
        ("alpha/v1/embeddings", b"{}", 404, None),
    ],
)
def test_bad_input_is_an_openai_error(
    pack: PackServe, path: str, body: bytes, status: int, param: str | None
) -> None:
    response = httpx.post(f"{pack.url}/{path}", content=body, timeout=60)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_longer_than_the_context_is_a_400(pack: PackServe, stream: bool) -> None:
    prompt = "word " * 1500  # gamma's context is 512 tokens
    response = httpx.post(
        f"{pack.url}/gamma/v1/completions",
        json={"prompt": prompt, "max_tokens": 4, "stream": stream},
        timeout=300,
    )
    assert response.status_code == 400
    assert "context window of 512" in response.json()["error"]["message"]
