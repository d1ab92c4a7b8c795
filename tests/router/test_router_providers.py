"""Cloud providers: OpenAI and Anthropic shapes, keys from env var or Secret file, never logged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from routerkit import PYTHON, Proc, chat, fleet_config, free_port

KEY = "sk-standin-secret-0123456789"


@pytest.fixture(scope="module")
def keyed(logs_dir: Path) -> Iterator[str]:
    """A stand-in that demands ``KEY`` (401 otherwise)."""
    port = free_port()
    proc = Proc(
        "standin-keyed", [PYTHON, "-m", "flotilla.standin", "--port", str(port), "--api-key", KEY], logs_dir
    )
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", 30)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def _keyed_config(url: str, **key: str) -> dict[str, object]:
    config = fleet_config(None, url)
    fallbacks = config["fallbacks"]
    assert isinstance(fallbacks, list)
    for fallback in fallbacks:
        fallback.update(key)
    return config


def test_keys_from_env_and_file_are_sent_and_never_logged(make_router, keyed, tmp_path):
    secret_file = tmp_path / "api-key"
    secret_file.write_text(KEY + "\n")
    by_env = make_router(_keyed_config(keyed, apiKeyEnv="STANDIN_KEY"), env={"STANDIN_KEY": KEY}, name="env")
    by_file = make_router(_keyed_config(keyed, apiKeyFile=str(secret_file)), name="file")
    for router in (by_env, by_file):
        for task in ("chat", "writing"):  # frontier (OpenAI Bearer) and claude (Anthropic x-api-key)
            response = httpx.post(
                f"{router.url}/v1/chat/completions", json=chat("hi", model=task), timeout=30
            )
            assert response.status_code == 200, response.text
        assert KEY not in router.proc.log()


def test_wrong_key_is_an_upstream_error(make_router, keyed):
    router = make_router(_keyed_config(keyed, apiKeyEnv="STANDIN_KEY"), env={"STANDIN_KEY": "sk-wrong"})
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hi"), timeout=30)
    assert response.status_code == 502
    assert "frontier answered HTTP 401" in response.json()["error"]["message"]
    assert "sk-wrong" not in router.proc.log()


def test_anthropic_translation_with_the_openai_client(make_router, cloud):
    router = make_router(fleet_config(None, cloud.url))
    client = openai.OpenAI(base_url=f"{router.url}/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="writing",
        max_tokens=4,
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Write a haiku"}],
    )
    completion = raw.parse()
    assert raw.headers["x-flotilla-model"] == "claude"
    text = completion.choices[0].message.content or ""
    assert text.startswith("[flotilla stand-in provider]")
    assert completion.usage is not None and completion.usage.prompt_tokens == 5  # system + user words
    assert completion.choices[0].finish_reason == "length"

    stream = client.chat.completions.create(
        model="writing",
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Write a haiku"}],
    )
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text  # same stand-in answer, streamed as Anthropic events, relayed as OpenAI chunks
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]

    legacy = client.completions.create(model="claude", prompt="Say hi", max_tokens=3)
    assert legacy.choices[0].text.startswith("[flotilla stand-in provider]")


def test_openai_compatible_4xx_body_is_not_relayed(make_router, cloud):
    """An openai-compatible host is the fleet author's choice (maybe an in-cluster service): its 4xx body
    stays in the router; the client learns the provider and the status. The official providers' bodies
    still pass (they explain the client's mistake)."""
    config = fleet_config(None, cloud.url)
    fallbacks = config["fallbacks"]
    assert isinstance(fallbacks, list)
    fallbacks.append({**fallbacks[0], "name": "compat", "provider": "openai-compatible"})
    router = make_router(config)
    prompt = chat("[standin status=400] hi")
    compat = httpx.post(f"{router.url}/v1/chat/completions", json={**prompt, "model": "compat"}, timeout=30)
    assert compat.status_code == 400
    assert "injected error" not in compat.text and "stand-in" not in compat.text
    error = compat.json()["error"]
    assert error["message"] == "fallback compat (openai-compatible) answered HTTP 400"
    assert (error["type"], error["code"]) == ("invalid_request_error", "upstream_client_error")
    assert compat.headers["x-flotilla-model"] == "compat"
    official = httpx.post(
        f"{router.url}/v1/chat/completions", json={**prompt, "model": "frontier"}, timeout=30
    )
    assert official.status_code == 400 and "injected error 400" in official.text
