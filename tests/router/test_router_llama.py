"""Through the router to a real llama.cpp server running Gemma 3 270M, with the official openai client."""

from __future__ import annotations

import httpx
import openai
import pytest
from routerkit import POD_PRICE, fleet_config

pytestmark = pytest.mark.llamacpp


@pytest.fixture
def client(make_router, llama, cloud):
    config = fleet_config(
        llama, cloud.url, servedModelName="gemma", firstByteTimeoutSeconds=60.0, timeoutSeconds=120.0
    )
    router = make_router(config)
    return router, openai.OpenAI(base_url=f"{router.url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_chat_plain_and_priced(client):
    router, api = client
    raw = api.chat.completions.with_raw_response.create(
        model="chat", max_tokens=8, messages=[{"role": "user", "content": "Say hello in one word."}]
    )
    completion = raw.parse()
    assert (raw.headers["x-flotilla-model"], raw.headers["x-flotilla-route-reason"]) == ("pod", "alias")
    assert completion.choices[0].message.content
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 8
    expected = (
        usage.prompt_tokens * POD_PRICE["inputPerMTok"] + usage.completion_tokens * POD_PRICE["outputPerMTok"]
    ) / 1e6
    assert float(raw.headers["x-flotilla-cost-usd"]) == pytest.approx(expected)
    assert router.metric("flotilla_router_dollars_total", model="pod", task="chat") == pytest.approx(expected)


def test_chat_streaming_from_the_real_model(client):
    router, api = client
    stream = api.chat.completions.create(
        model="auto",
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Count from one to five."}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2  # really streamed
    usage = chunks[-1].usage  # llama-cpp-python sends none: the router counted chunks and says so
    assert usage is not None and 0 < usage.completion_tokens <= 12
    assert usage.model_extra == {"estimated": True}
    assert usage.completion_tokens == len([c for c in chunks if c.choices and c.choices[0].delta.content])
    tokens = sum(  # whatever task "auto" chose
        value
        for (name, labels), value in router.metrics().items()
        if name == "flotilla_router_tokens_total"
        and ("kind", "completion") in labels
        and ("model", "pod") in labels
    )
    assert tokens == usage.completion_tokens


def test_legacy_completions_and_stream_without_usage(client):
    router, api = client
    completion = api.completions.create(model="pod", prompt="The capital of France is", max_tokens=6)
    assert completion.choices[0].text
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    with httpx.stream(
        "POST",
        f"{router.url}/v1/chat/completions",
        timeout=120,
        json={"max_tokens": 6, "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]" and not any(
        '"usage": {' in line or '"usage":{' in line for line in lines
    )
    # ...yet the router priced it (from the chunks it counted: llama-cpp-python sends no usage in streams).
    assert router.metric("flotilla_router_requests_total", model="pod", task="chat", outcome="ok") == 2
    assert router.metric("flotilla_router_tokens_total", model="pod", task="chat", kind="completion") > 0
