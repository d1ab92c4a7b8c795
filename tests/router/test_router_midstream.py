"""Mid-stream failover against real processes: a stream cut at random points (stand-in pod), an error event,
a failing continuation target, and a real llama.cpp server killed mid-answer, read with the OpenAI SDK."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import openai
from conftest import Standin
from routerkit import PYTHON, Proc, fleet_config, free_port, gemma_gguf, sse_events

WORDS = 14  # the stand-in's answer: its banner, "echo:" and the prompt's first 12 words, each once
PROMPT = f"Tell me a long story about the sea and a lighthouse keeper please [standin chunks={WORDS}]"


def _config(pod_url: str, cloud_url: str, **task: Any) -> dict[str, Any]:
    """``chat``: the pod, then ``mirror`` (an openai-compatible stand-in), then ``claude`` (Anthropic)."""
    config = fleet_config(pod_url, cloud_url)
    config["fallbacks"].append(  # type: ignore[attr-defined]
        {"name": "mirror", "provider": "openai-compatible", "baseURL": f"{cloud_url}/v1", "model": "mirror-1"}
    )
    config["tasks"] = [{"name": "chat", "models": ["pod"], "fallbacks": ["mirror", "claude"], **task}]
    config["circuitBreaker"] = {"failures": 50, "cooldownSeconds": 1.0}  # every cut leg counts as a failure
    return config


def _read(router_url: str, prompt: str = PROMPT, **extra: Any) -> tuple[list[Any], str]:
    """Stream with the OpenAI SDK: every chunk, and the text they carry."""
    client = openai.OpenAI(base_url=f"{router_url}/v1", api_key="unused", max_retries=0, timeout=60)
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        max_tokens=200,
        stream_options={"include_usage": True},
        **extra,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


def _whole_answer(cloud: Standin, prompt: str = PROMPT) -> str:
    body = {"model": "x", "messages": [{"role": "user", "content": prompt}], "max_tokens": 200}
    answer: str = httpx.post(f"{cloud.url}/v1/chat/completions", json=body, timeout=10).json()["choices"][0][
        "message"
    ]["content"]
    return answer


def _one_stream(chunks: list[Any]) -> None:
    """Every chunk carries the same id, object, created and model; a role only at the start."""
    assert len({(c.id, c.object, c.created, c.model) for c in chunks}) == 1
    roles = [i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.role]
    assert roles in ([], [0])


def test_random_cuts_read_as_one_uninterrupted_answer(make_router, clean_flaky, cloud):
    router = make_router(_config(clean_flaky.url, cloud.url), admin=True)
    expected = _whole_answer(cloud)
    rounds = 6
    for _ in range(rounds):
        clean_flaky.faults(drop_random=1, count=1)
        chunks, text = _read(router.url)
        assert text == expected  # the pod's prefix plus the mirror's continuation, nothing twice
        _one_stream(chunks)
        assert chunks[0].model == "pod-model"  # the first leg's identity throughout
        cut = clean_flaky.stats()["cuts"][-1]
        prefill = cloud.stats()["last_prefill"]
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert prefill == "".join(pieces[:cut])  # what the client had is what the mirror continued
        usage = chunks[-1].usage
        assert usage.completion_tokens == WORDS  # the pod's words (counted) plus the mirror's (reported)
        prompt_estimate = len(PROMPT) // 4 + 4  # the pod leg's prompt, estimated: it reported none
        assert usage.prompt_tokens == prompt_estimate + len(PROMPT.split()) + len(prefill.split())
        (switch,) = chunks[-1].model_extra["flotilla"]["midstream_failovers"]
        assert (switch["from"], switch["to"], switch["after_chars"]) == ("pod", "mirror", len(prefill))
    assert (
        router.metric("flotilla_router_failovers_total", model="pod", task="chat", phase="midstream")
        == rounds
    )
    assert (
        router.metric("flotilla_router_requests_total", model="mirror", task="chat", outcome="ok") == rounds
    )
    assert (
        router.metric("flotilla_router_requests_total", model="pod", task="chat", outcome="error") == rounds
    )
    assert router.metric("flotilla_router_in_flight", model="pod") == 0
    assert router.metric("flotilla_router_in_flight", model="mirror") == 0


def test_error_event_then_a_refusing_target_continue_on_anthropic(make_router, clean_flaky, cloud):
    router = make_router(_config(clean_flaky.url, cloud.url))
    expected = _whole_answer(cloud)
    clean_flaky.faults(error_after=5, count=1)
    cloud.faults(status=503, count=1)  # the mirror refuses the continuation: on to claude
    body = {"messages": [{"role": "user", "content": PROMPT}], "stream": True, "max_tokens": 200}
    with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as response:
        lines = list(response.iter_lines())
    events = sse_events(lines)
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert all("error" not in p for p in payloads)
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads if p["choices"])
    assert text == expected
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"} and len(
        {p["id"] for p in payloads}
    ) == 1
    comment = [line for line in lines if line.startswith(": flotilla ")]
    record = json.loads(comment[0].removeprefix(": flotilla "))["midstream_failovers"]
    assert [(r["from"], r["to"]) for r in record] == [("pod", "claude")]
    assert "error event" in record[0]["why"]
    prefill = cloud.stats()["last_prefill"]
    assert text.startswith(prefill) and 0 < len(prefill) < len(text)


def test_two_cuts_need_two_switches(make_router, clean_flaky, cloud):
    expected = _whole_answer(cloud)
    router = make_router(_config(clean_flaky.url, cloud.url, maxMidStreamSwitches=2))
    clean_flaky.faults(drop_random=1, count=1)
    cloud.faults(drop_random=1, count=1)  # the mirror's continuation is cut too: claude finishes it
    chunks, text = _read(router.url)
    assert text == expected
    _one_stream(chunks)
    record = chunks[-1].model_extra["flotilla"]["midstream_failovers"]
    assert [(r["from"], r["to"]) for r in record] == [("pod", "mirror"), ("mirror", "claude")]
    # Both legs' usage: one token per word, plus one when a cut came after the last word (the provider
    # asked to continue a complete answer still produces, and bills, an empty piece)
    complete_before_cut = any(r["after_chars"] >= len(expected) for r in record)
    assert chunks[-1].usage.completion_tokens == WORDS + complete_before_cut


def test_one_switch_allowed_and_disabled_failover_end_in_an_error_event(make_router, clean_flaky, cloud):
    router = make_router(_config(clean_flaky.url, cloud.url))  # maxMidStreamSwitches defaults to 1
    clean_flaky.faults(drop_random=1, count=1)
    cloud.faults(drop_random=1, count=1)
    try:
        _read(router.url)
        raise AssertionError("a stream cut twice with one switch allowed must end in an error")
    except openai.APIError as exc:
        assert "mirror stream broke" in str(exc)
    off = make_router(_config(clean_flaky.url, cloud.url, midStreamFailover=False), name="off")
    clean_flaky.faults(drop_random=1, count=1)
    before = cloud.stats()["requests"]
    try:
        _read(off.url)
        raise AssertionError("with midStreamFailover false a cut stream ends in an error")
    except openai.APIError as exc:
        assert "pod stream broke" in str(exc)
    assert cloud.stats()["requests"] == before  # nothing was continued


def test_killed_llama_server_is_continued_by_the_next_upstream(make_router, cloud, logs_dir: Path):
    """A real llama.cpp server (Gemma 3 270M) killed by PID mid-answer; the stand-in continues it."""
    gguf = gemma_gguf()
    port = free_port()
    argv = [
        PYTHON, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "gemma", "--chat_format",
        "gemma", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
    ]  # fmt: skip
    llama = Proc("llama-killed", argv, logs_dir)
    try:
        llama.wait_http(f"http://127.0.0.1:{port}/v1/models", 180)
        config = _config(f"http://127.0.0.1:{port}", cloud.url)
        config["models"][0]["servedModelName"] = "gemma"  # type: ignore[index]
        config["models"][0]["firstByteTimeoutSeconds"] = 60  # type: ignore[index]
        router = make_router(config, admin=True)
        client = openai.OpenAI(base_url=f"{router.url}/v1", api_key="unused", max_retries=0, timeout=120)
        prompt = "Write a long story about a lighthouse keeper and the sea."
        stream = client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            max_tokens=400,
            temperature=0,
            stream_options={"include_usage": True},
        )
        chunks, before = [], ""
        for chunk in stream:
            chunks.append(chunk)
            if llama.popen.poll() is None and chunk.choices and chunk.choices[0].delta.content:
                before += chunk.choices[0].delta.content  # what the client had when the pod died
            if len(before.split()) >= 5 and llama.popen.poll() is None:
                os.kill(llama.pid, signal.SIGKILL)  # the pod dies mid-answer
                llama.popen.wait(10)
    finally:
        llama.stop()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    prefill = cloud.stats()["last_prefill"]
    assert prefill.startswith(before) and text.startswith(before)
    answer = _whole_answer(cloud, prompt)
    assert text == prefill + ("" if prefill != prefill.rstrip() else " ") + answer  # no chunk twice
    _one_stream(chunks)
    assert chunks[0].model == "gemma"
    (switch,) = chunks[-1].model_extra["flotilla"]["midstream_failovers"]
    assert (switch["from"], switch["to"]) == ("pod", "mirror")
    assert chunks[-1].usage.completion_tokens > len(answer.split())
    assert router.metric("flotilla_router_failovers_total", model="pod", task="chat", phase="midstream") == 1


def test_a_cut_completions_stream_is_continued_on_anthropic(make_router, clean_flaky, cloud):
    config = _config(clean_flaky.url, cloud.url)
    config["tasks"][0]["fallbacks"] = ["claude"]  # type: ignore[index]
    router = make_router(config)
    expected = _whole_answer(cloud)
    clean_flaky.faults(drop_random=1, count=1)
    client = openai.OpenAI(base_url=f"{router.url}/v1", api_key="unused", max_retries=0, timeout=60)
    chunks = list(client.completions.create(model="chat", prompt=PROMPT, stream=True, max_tokens=200))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected
    assert len({(c.id, c.object, c.created, c.model) for c in chunks}) == 1
    assert chunks[0].object == "text_completion" and chunks[0].model == "pod-model"
    assert chunks[-1].choices[0].finish_reason == "stop"
