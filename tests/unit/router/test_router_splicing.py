"""Mid-stream failover's pure parts: reading back what the client has, the continuation request, splicing."""

from __future__ import annotations

import json

import pytest

from flotilla.api.routerconfig import Price
from flotilla.router import continuing, pricing, requesting, splicing, streams
from flotilla.router.forwarding import Target
from flotilla.router.upstreams import Pool


def _chunk(content: str | None = None, finish: str | None = None, role: bool = False, **top: object) -> bytes:
    delta: dict[str, object] = {} if content is None else {"content": content}
    if role:
        delta["role"] = "assistant"
    body = {"id": "c-1", "object": "chat.completion.chunk", "created": 7, "model": "gemma", **top}
    body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _payloads(data: bytes) -> list[dict[str, object]]:
    raws = [streams.event_data(e) for e in streams.split_events(data)]
    return [json.loads(raw) for raw in raws if raw and raw != b"[DONE]"]


def _target(protocol: str = "openai", is_cloud: bool = True) -> Target:
    pool = Pool("t", None)  # type: ignore[arg-type]  # never picks here
    return Target("t", pool, protocol, "m", Price(), 1, 1, None, False, is_cloud)  # type: ignore[arg-type]


def test_partial_reads_text_identity_and_state():
    sent = _chunk("", role=True) + _chunk("Hello") + _chunk(" wor") + b": keep-alive\n\n"
    partial = splicing.partial_of(sent, chat=True)
    assert partial.text == "Hello wor" and partial.chunks == 2 and partial.role_sent
    assert partial.identity == {
        "id": "c-1",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "gemma",
    }
    assert partial.continuable and not partial.finished
    assert splicing.partial_of(sent + _chunk(None, "stop"), chat=True).finished
    tools = _chunk(None).replace(b'"delta": {}', b'"delta": {"tool_calls": [{"index": 0}]}')
    assert not splicing.partial_of(sent + tools, chat=True).continuable


def test_splice_takes_the_streams_identity_drops_role_and_usage_and_ends_at_done():
    partial = splicing.partial_of(_chunk("Hi", role=True), chat=True)
    splice = splicing.Splice(partial, chat=True)
    leg = (
        _chunk("", role=True, id="other", created=99, model="standin")
        + _chunk(" there", id="other", created=99, model="standin")
        + _chunk(None, "stop", id="other")
        + b'data: {"id": "other", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 1}}\n\n'
        + streams.DONE
    )
    out = _payloads(splice.feed(leg))
    assert [p["choices"][0]["delta"] for p in out] == [{"content": " there"}, {}]  # type: ignore[index]
    assert {(p["id"], p["created"], p["model"]) for p in out} == {("c-1", 7, "gemma")}
    assert all("usage" not in p for p in out)
    assert splice.text == " there" and splice.chunks == 1
    assert splice.usage == pricing.Usage(4, 1) and splice.done and partial.finished


def test_splice_trims_whitespace_an_anthropic_prefill_left_out():
    partial = splicing.partial_of(_chunk("One.\n\n"), chat=True)
    splice = splicing.Splice(partial, chat=True, skip="\n\n")
    out = splice.feed(_chunk("\n") + _chunk("\nTwo") + _chunk(" three"))
    assert [p["choices"][0]["delta"].get("content") for p in _payloads(out)] == ["Two", " three"]  # type: ignore[index, union-attr]
    other = splicing.Splice(splicing.partial_of(_chunk("One. "), chat=True), chat=True, skip=" ")
    assert _payloads(other.feed(_chunk("Two")))[0]["choices"][0]["delta"] == {"content": "Two"}  # type: ignore[index]


def test_splice_raises_on_an_error_event():
    splice = splicing.Splice(splicing.Partial(), chat=True)
    with pytest.raises(ValueError, match="overloaded"):
        splice.feed(b'data: {"error": {"message": "overloaded"}}\n\n')


def test_tail_adds_usage_and_records_the_switch():
    partial = splicing.partial_of(_chunk("Hi"), chat=True)
    record = [{"from": "pod", "to": "cloud", "after_chars": 2, "why": "x"}]
    tail = splicing.tail(partial, pricing.Usage(10, 5), True, record)
    usage_chunk = _payloads(tail)[0]
    assert usage_chunk["usage"] == {
        "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "estimated": True
    }  # fmt: skip
    assert usage_chunk["flotilla"] == {"midstream_failovers": record} and usage_chunk["id"] == "c-1"
    assert b"\n: flotilla " in b"\n" + tail and tail.endswith(streams.DONE)
    assert splicing.tail(partial, None, False, record).startswith(b": flotilla ")


def _parsed(body: dict[str, object], kind: requesting.Kind = "chat") -> requesting.ParsedRequest:
    return requesting.parse(kind, json.dumps(body).encode())


def test_continuation_of_a_chat_on_a_fleet_pod_and_on_anthropic():
    parsed = _parsed({"messages": [{"role": "user", "content": "q"}], "stream": True, "max_tokens": 10})
    request, skip = continuation_of(parsed, _target(is_cloud=False), "Part one. ", 3)
    assert request.payload["messages"][-1] == {"role": "assistant", "content": "Part one. "}
    assert request.payload["max_tokens"] == 7 and request.payload["continue_final_message"] is True
    assert request.raw == b"" and skip == ""
    request, skip = continuation_of(parsed, _target("anthropic"), "Part one. ", 3)
    assert request.messages[-1] == {"role": "assistant", "content": "Part one."} and skip == " "
    assert "continue_final_message" not in request.payload


def test_continuation_extends_a_client_prefill_and_a_completion_prompt():
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Sure:"}]
    request, _ = continuation_of(_parsed({"messages": messages}), _target(), " one", 1)
    assert request.payload["messages"] == [messages[0], {"role": "assistant", "content": "Sure: one"}]
    request, _ = continuation_of(_parsed({"prompt": "Count:"}, "completions"), _target(), " 1 2", 2)
    assert request.payload["prompt"] == "Count: 1 2" and request.stream


def test_several_choices_are_not_continued():
    assert continuing.eligible(_parsed({"messages": [{"role": "user", "content": "q"}]}))
    assert not continuing.eligible(_parsed({"messages": [{"role": "user", "content": "q"}], "n": 2}))
    assert not continuing.eligible(_parsed({"prompt": ["a", "b"]}, "completions"))


def test_relay_cuts_an_error_event_and_what_follows():
    relay = streams.SseRelay(drop_usage_only=True)
    error = b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'
    out = relay.feed(_chunk("Hi") + error + _chunk("lost"))
    assert out == _chunk("Hi") and relay.error == "error event: boom"
    quoted = streams.SseRelay(drop_usage_only=True)  # "error" inside generated text is just text
    text = _chunk('say "error"')
    assert quoted.feed(text) == text and quoted.error is None


continuation_of = continuing.continuation
