"""Merging test-time compute samples and shaping the requests that ask for them (no I/O)."""

from __future__ import annotations

import json

import pytest

from flotilla.api.routerconfig import Sampling
from flotilla.router import escalating, requesting, sampling
from flotilla.router.replies import Plain


def _reply(texts: list[str], prompt: int, completion: int, cost: float) -> Plain:
    choices = [{"index": i, "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)]
    body = {
        "id": "x",
        "choices": choices,
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
    }
    return Plain(200, json.dumps(body).encode(), {sampling.COST_HEADER: f"{cost:.10f}"})


def test_merge_sums_usage_and_cost_and_reindexes() -> None:
    merged = sampling.merge(
        [_reply(["4"], 20, 3, 0.001), _reply(["5"], 20, 5, 0.002), _reply(["4"], 20, 1, 0.0005)]
    )
    assert merged is not None
    assert [c["index"] for c in merged.choices] == [0, 1, 2]
    assert [c["message"]["content"] for c in merged.choices] == ["4", "5", "4"]
    assert (merged.usage.prompt_tokens, merged.usage.completion_tokens) == (60, 9)  # type: ignore[union-attr]
    assert (merged.one_answer.prompt_tokens, merged.one_answer.completion_tokens) == (20, 3)  # type: ignore[union-attr]
    assert merged.dollars == pytest.approx(0.0035)


def test_merge_of_one_reply_with_n_choices() -> None:
    merged = sampling.merge([_reply(["a", "b", "c"], 30, 12, 0.01)])
    assert merged is not None and len(merged.choices) == 3
    assert (merged.one_answer.prompt_tokens, merged.one_answer.completion_tokens) == (30, 4)  # type: ignore[union-attr]


def test_merge_skips_bodies_that_are_not_completions() -> None:
    assert sampling.merge([Plain(200, b"not json"), Plain(200, b'{"choices": []}')]) is None


def test_sampled_requests_keep_a_client_temperature_and_seed_each_sample() -> None:
    parsed = requesting.parse("chat", b'{"messages": [{"role": "user", "content": "hi"}], "n": 1}')
    settings = Sampling(samples=3, temperature=0.9)
    first = sampling.sampled_request(parsed, settings, 7, 1)
    assert (first.payload["temperature"], first.payload["seed"], "n" in first.payload, first.raw) == (
        0.9,
        7,
        False,
        b"",
    )
    parsed = requesting.parse(
        "chat", b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 0.3}'
    )
    assert sampling.sampled_request(parsed, settings, 1, 3).payload == {**parsed.payload, "seed": 1, "n": 3}
    assert parsed.payload == {
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.3,
    }  # not mutated


def test_logprobs_are_asked_in_each_api_shape_unless_the_client_did() -> None:
    chat = requesting.parse("chat", b'{"messages": [{"role": "user", "content": "hi"}]}')
    assert {k: escalating.with_logprobs(chat).payload[k] for k in ("logprobs", "top_logprobs")} == {
        "logprobs": True,
        "top_logprobs": 0,
    }
    legacy = requesting.parse("completions", b'{"prompt": "hi"}')
    assert escalating.with_logprobs(legacy).payload["logprobs"] == 1
    own = requesting.parse("chat", b'{"messages": [{"role": "user", "content": "hi"}], "logprobs": true}')
    assert escalating.with_logprobs(own) is own
