"""Cost and metrics values: tokens times price per serving model and task, and dollars saved vs. the cloud."""

from __future__ import annotations

import httpx
import pytest
from routerkit import CLAUDE_PRICE, CLOUD_PRICE, POD_PRICE, chat, fleet_config, sse_events


def _dollars(price: dict[str, float], prompt: int, completion: int) -> float:
    return (prompt * price["inputPerMTok"] + completion * price["outputPerMTok"]) / 1_000_000


def test_costs_tokens_and_saved(make_router, clean_flaky, cloud):
    router = make_router(fleet_config(clean_flaky.url, cloud.url))
    usages: list[tuple[int, int]] = []
    plain = httpx.post(
        f"{router.url}/v1/chat/completions", json=chat("price this answer please", model="chat"), timeout=30
    )
    usage = plain.json()["usage"]
    usages.append((usage["prompt_tokens"], usage["completion_tokens"]))
    assert float(plain.headers["x-flotilla-cost-usd"]) == pytest.approx(_dollars(POD_PRICE, *usages[0]))

    body = chat("stream and price this", model="chat", stream=True, stream_options={"include_usage": True})
    with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as response:
        events = sse_events(list(response.iter_lines()))
    import json

    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0
    usages.append((last["usage"]["prompt_tokens"], last["usage"]["completion_tokens"]))

    # The client did not ask for usage: it gets none, but the router asked upstream and still prices it.
    body = chat("stream and price this", model="chat", stream=True)
    with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as response:
        events = sse_events(list(response.iter_lines()))
    assert not any('"usage"' in e for e in events) and events[-1] == "[DONE]"
    usages.append(usages[-1])  # same prompt, same deterministic stand-in answer

    prompt = sum(p for p, _ in usages)
    completion = sum(c for _, c in usages)
    labels = {"model": "pod", "task": "chat"}
    assert router.metric("flotilla_router_tokens_total", kind="prompt", **labels) == prompt
    assert router.metric("flotilla_router_tokens_total", kind="completion", **labels) == completion
    spent = _dollars(POD_PRICE, prompt, completion)
    assert router.metric("flotilla_router_dollars_total", **labels) == pytest.approx(spent)
    saved = _dollars(CLOUD_PRICE, prompt, completion) - spent  # chat's first cloud fallback is frontier
    assert router.metric("flotilla_router_dollars_saved_total", **labels) == pytest.approx(saved)
    assert router.metric("flotilla_router_requests_total", outcome="ok", **labels) == 3
    assert router.metric("flotilla_router_request_seconds_count", **labels) == 3
    assert router.metric("flotilla_router_first_byte_seconds_count", **labels) == 3
    assert router.metric("flotilla_router_in_flight", model="pod") == 0


def test_cloud_served_requests_cost_cloud_prices_and_save_nothing(make_router, cloud):
    router = make_router(fleet_config(None, cloud.url))  # no pod: chat → frontier, writing → claude
    response = httpx.post(f"{router.url}/v1/chat/completions", json=chat("hello cloud"), timeout=30)
    usage = response.json()["usage"]
    expected = _dollars(CLOUD_PRICE, usage["prompt_tokens"], usage["completion_tokens"])
    assert router.metric("flotilla_router_dollars_total", model="frontier", task="chat") == pytest.approx(
        expected
    )
    assert router.metric("flotilla_router_dollars_saved_total", model="frontier", task="chat") == 0

    body = chat("a poem", stream=True, model="writing")
    with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as streamed:
        assert streamed.headers["x-flotilla-model"] == "claude"
        streamed.read()
    # The Anthropic stand-in counts whitespace words: "a poem" is 2 input tokens; 4 output words.
    labels = {"model": "claude", "task": "writing"}
    assert router.metric("flotilla_router_tokens_total", kind="prompt", **labels) == 2
    completion = router.metric("flotilla_router_tokens_total", kind="completion", **labels)
    assert completion == 4
    assert router.metric("flotilla_router_dollars_total", **labels) == pytest.approx(
        _dollars(CLAUDE_PRICE, 2, 4)
    )


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_negative_usage_is_ignored_and_the_slot_released(make_router, clean_flaky, cloud, stream: bool):
    """A pod reporting negative tokens used to raise (a Counter cannot go down) before its slot was released,
    leaving it "overloaded" for good; the answer is served, the bad usage dropped, the slot given back."""
    router = make_router(fleet_config(clean_flaky.url, cloud.url, maxInFlight=1))
    body = chat("count me [standin prompt_tokens=-7]", model="pod", stream=stream)
    for _ in range(3):  # with the slot leaked, the second request would fall back (overload)
        with httpx.stream("POST", f"{router.url}/v1/chat/completions", json=body, timeout=30) as response:
            text = response.read().decode()
            assert response.status_code == 200, text
            assert response.headers["x-flotilla-model"] == "pod", text
            assert response.headers["x-flotilla-route-reason"] == "model"
    assert router.metric("flotilla_router_in_flight", model="pod") == 0
    assert router.metric("flotilla_router_requests_total", model="pod", task="chat", outcome="ok") == 3
    # unusable usage is no usage: not billed (and a stream's is not estimated, however its events arrive)
    assert router.metric("flotilla_router_tokens_total", model="pod", task="chat", kind="prompt") == 0
    assert "Traceback" not in router.proc.log()
