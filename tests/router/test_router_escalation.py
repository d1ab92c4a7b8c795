"""Escalation (confidence cascade) and test-time compute through the router: the real llama.cpp server
for logprobs and samples, the stand-in playing a pod for verifiers, the stand-in cloud as the next in the
chain."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from routerkit import CLOUD_PRICE, POD_PRICE, chat, fleet_config, sse_events


def _stream(router_url: str, body: dict[str, Any], task: str) -> tuple[httpx.Response, list[str]]:
    """A streamed request to ``task``: the response (headers) and its SSE data payloads."""
    with httpx.stream(
        "POST", f"{router_url}/v1/chat/completions", json=body, headers={"x-flotilla-task": task}, timeout=300
    ) as response:
        return response, sse_events(list(response.iter_lines()))


def _dollars(price: dict[str, float], usage: dict[str, int]) -> float:
    return (
        usage["prompt_tokens"] * price["inputPerMTok"] + usage["completion_tokens"] * price["outputPerMTok"]
    ) / 1e6


def _config(pod_url: str, cloud_url: str, **tasks: dict[str, Any]) -> dict[str, Any]:
    """The routerkit fleet plus, per name in ``tasks``, a task pod → frontier with those settings."""
    config = fleet_config(
        pod_url, cloud_url, servedModelName="gemma", firstByteTimeoutSeconds=120.0, timeoutSeconds=300.0
    )
    config["tasks"] += [
        {"name": name, "models": ["pod"], "fallbacks": ["frontier"], **t} for name, t in tasks.items()
    ]
    return config


def _post(router, task: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{router.url}/v1/chat/completions", json=body, headers={"x-flotilla-task": task}, timeout=300
    )


@pytest.mark.llamacpp
def test_low_mean_logprob_escalates_to_the_cloud_and_both_answers_are_priced(
    make_router, llama_logprobs, cloud
):
    router = make_router(
        _config(
            llama_logprobs,
            cloud.url,
            strict={"escalation": {"minMeanLogprob": -0.0001}},  # a real answer is never that sure
            lenient={"escalation": {"minMeanLogprob": -100}},
        )
    )
    body = chat("Name one planet of the solar system.", max_tokens=4, temperature=0)
    response = _post(router, "strict", body)
    assert response.status_code == 200, response.text
    headers = response.headers
    assert headers["x-flotilla-route-reason"] == "escalated:logprob"
    assert (headers["x-flotilla-model"], headers["x-flotilla-escalated-from"]) == ("frontier", "pod")
    assert float(headers["x-flotilla-mean-logprob"]) < -0.0001  # llama.cpp's logprobs reached the router
    assert response.json()["choices"][0]["message"]["content"].startswith("[flotilla stand-in provider]")
    pod = router.metric("flotilla_router_dollars_total", model="pod", task="strict")
    frontier = router.metric("flotilla_router_dollars_total", model="frontier", task="strict")
    assert pod > 0 and frontier == pytest.approx(_dollars(CLOUD_PRICE, response.json()["usage"]))
    assert float(headers["x-flotilla-cost-usd"]) == pytest.approx(pod + frontier)
    assert router.metric("flotilla_router_escalations_total", task="strict", reason="logprob") == 1
    assert router.metric("flotilla_router_escalation_checks_total", task="strict") == 1
    assert router.metric("flotilla_router_cascade_dollars_total", task="strict") == pytest.approx(
        pod + frontier
    )
    assert router.metric("flotilla_router_escalation_overhead_dollars_total", task="strict") == pytest.approx(
        pod
    )

    response = _post(router, "lenient", body)
    assert response.status_code == 200, response.text
    assert (
        response.headers["x-flotilla-model"] == "pod" and "x-flotilla-escalated-from" not in response.headers
    )
    assert float(response.headers["x-flotilla-mean-logprob"]) < 0
    answer = response.json()
    assert answer["choices"][0]["logprobs"] is None  # asked by the router, not by the client: left out
    spent = _dollars(POD_PRICE, answer["usage"])
    assert float(response.headers["x-flotilla-cost-usd"]) == pytest.approx(spent)
    saved = _dollars(CLOUD_PRICE, answer["usage"]) - spent
    assert router.metric("flotilla_router_cascade_dollars_saved_total", task="lenient") == pytest.approx(
        saved
    )
    assert router.metric("flotilla_router_escalations_total", task="lenient", reason="logprob") == 0
    assert router.metric("flotilla_router_in_flight", model="pod") == 0


@pytest.mark.llamacpp
def test_test_time_compute_samples_the_real_model_and_prices_every_sample(make_router, llama, cloud):
    router = make_router(
        _config(llama, cloud.url, vote={"testTimeCompute": {"samples": 3, "select": "majority"}})
    )
    body = chat("Reply with a number: what is 2 + 2?", max_tokens=4, seed=11)
    response = _post(router, "vote", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert response.headers["x-flotilla-samples"] == "3" and response.headers["x-flotilla-model"] == "pod"
    assert 0 <= float(response.headers["x-flotilla-agreement"]) <= 1
    assert [c["index"] for c in answer["choices"]] == [0]
    usage = answer["usage"]  # the three requests' usage, summed: the same prompt three times
    assert usage["prompt_tokens"] % 3 == 0 and usage["completion_tokens"] >= 3
    assert router.metric("flotilla_router_samples_total", model="pod", task="vote") == 3
    labels = {"model": "pod", "task": "vote"}
    assert router.metric("flotilla_router_tokens_total", kind="prompt", **labels) == usage["prompt_tokens"]
    assert (
        router.metric("flotilla_router_tokens_total", kind="completion", **labels)
        == usage["completion_tokens"]
    )
    assert float(response.headers["x-flotilla-cost-usd"]) == pytest.approx(_dollars(POD_PRICE, usage))


@pytest.mark.llamacpp
def test_a_held_stream_is_escalated_on_its_first_tokens_logprob(make_router, llama_logprobs, cloud):
    router = make_router(
        _config(
            llama_logprobs,
            cloud.url,
            strict={"escalation": {"minMeanLogprob": -0.0001, "holdTokens": 3}},
            lenient={"escalation": {"minMeanLogprob": -100, "holdTokens": 3}},
        )
    )
    body = chat("Count from one to five.", max_tokens=6, temperature=0, stream=True)
    response, events = _stream(router.url, body, "strict")
    assert response.headers["x-flotilla-route-reason"] == "escalated:logprob"
    assert response.headers["x-flotilla-model"] == "frontier"
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1] if '"choices": [{' in e
    )
    assert text.startswith("[flotilla stand-in provider]") and events[-1] == "[DONE]"
    assert router.metric("flotilla_router_escalations_total", task="strict", reason="logprob") == 1
    assert router.metric("flotilla_router_escalation_overhead_dollars_total", task="strict") > 0

    response, events = _stream(router.url, body, "lenient")
    assert response.headers["x-flotilla-model"] == "pod"
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")]
    assert len([t for t in content if t]) >= 3 and events[-1] == "[DONE]"  # the held tokens and the rest
    assert router.metric("flotilla_router_requests_total", model="pod", task="lenient", outcome="ok") == 1
    assert router.metric("flotilla_router_in_flight", model="pod") == 0


JSON = {"response_format": {"type": "json_object"}}


def test_verifiers_escalate_what_fails_them(make_router, clean_flaky, cloud):
    """The stand-in pod echoes text: not JSON, no number unless the prompt has one."""
    router = make_router(
        _config(
            clean_flaky.url,
            cloud.url,
            checked={"escalation": {"verifiers": ["json", "final-answer"]}},
            failing={"escalation": {"verifiers": ["json"]}, "fallbacks": []},
        )
    )
    cases = [  # (body, served by, route reason)
        (chat("give me json", **JSON), "frontier", "escalated:json"),
        (chat("no json asked for, and no number"), "frontier", "escalated:final-answer"),
        (chat("plain text with 42 in it"), "pod", "header"),
    ]
    for body, model, reason in cases:
        response = _post(router, "checked", body)
        assert response.status_code == 200, response.text
        assert (response.headers["x-flotilla-model"], response.headers["x-flotilla-route-reason"]) == (
            model,
            reason,
        )
    assert router.metric("flotilla_router_escalations_total", task="checked", reason="json") == 1
    assert router.metric("flotilla_router_escalations_total", task="checked", reason="final-answer") == 1
    assert router.metric("flotilla_router_escalation_checks_total", task="checked") == 3
    # nothing after the pod in the chain: its answer is served as it is
    response = _post(router, "failing", chat("json please", **JSON))
    assert response.headers["x-flotilla-model"] == "pod" and response.status_code == 200
    # the cloud failing during an escalation: the pod's answer is served rather than an error
    cloud.faults(status=503, count=1)
    try:
        response = _post(router, "checked", chat("give me json", **JSON))
    finally:
        cloud.clear()
    assert response.status_code == 200 and response.headers["x-flotilla-model"] == "pod"


def test_a_held_stream_failing_a_verifier_is_escalated_before_the_client_sees_it(
    make_router, clean_flaky, cloud
):
    router = make_router(
        _config(
            clean_flaky.url,
            cloud.url,
            checked={"escalation": {"verifiers": ["final-answer"], "holdTokens": 64}},
        )
    )
    for prompt, model in (("no number here", "frontier"), ("the number 7", "pod")):
        body = chat(prompt, stream=True, max_tokens=32)
        with httpx.stream(
            "POST",
            f"{router.url}/v1/chat/completions",
            json=body,
            headers={"x-flotilla-task": "checked"},
            timeout=30,
        ) as response:
            events = sse_events(list(response.iter_lines()))
        assert response.headers["x-flotilla-model"] == model
        text = "".join(
            json.loads(e)["choices"][0]["delta"].get("content") or ""
            for e in events
            if e != "[DONE]" and '"delta"' in e
        )
        assert prompt.split()[-1] in text and events[-1] == "[DONE]"  # whole, not a piece of each
    assert router.metric("flotilla_router_escalations_total", task="checked", reason="final-answer") == 1
    assert router.metric("flotilla_router_in_flight", model="pod") == 0


def test_a_task_without_these_settings_is_served_as_before(make_router, clean_flaky, cloud):
    router = make_router(_config(clean_flaky.url, cloud.url))
    response = _post(router, "chat", chat("hello", logprobs=False))
    assert response.headers["x-flotilla-route-reason"] == "header"
    assert "x-flotilla-mean-logprob" not in response.headers and "x-flotilla-samples" not in response.headers
    assert router.metric("flotilla_router_escalation_checks_total", task="chat") == 0


def test_a_runtime_answering_n_is_asked_once(make_router, clean_flaky, cloud):
    """``multipleChoices`` (rendered true for vLLM): one request with ``n`` (the stand-in plays the pod)."""
    config = _config(clean_flaky.url, cloud.url, vote={"testTimeCompute": {"samples": 4}})
    config["models"][0]["multipleChoices"] = True
    router = make_router(config)
    before = clean_flaky.stats()["requests"]
    response = _post(router, "vote", chat("the number 5 please"))
    assert response.status_code == 200, response.text
    assert clean_flaky.stats()["requests"] == before + 1
    answer = response.json()
    assert response.headers["x-flotilla-samples"] == "4"
    assert response.headers["x-flotilla-agreement"] == "1.00"
    text = answer["choices"][0]["message"]["content"]
    words = len(text.split()) - 2  # the stand-in counts its three-word banner as one token
    assert answer["usage"]["completion_tokens"] == 4 * words
    assert router.metric("flotilla_router_samples_total", model="pod", task="vote") == 4
    assert router.metric("flotilla_router_requests_total", model="pod", task="vote", outcome="ok") == 1
