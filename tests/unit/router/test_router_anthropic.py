"""OpenAI <-> Anthropic Messages translation, plain and streamed."""

from __future__ import annotations

import json

import pytest

from flotilla.router import anthropic, pricing, streams


def test_request_translation():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {}}]},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    ]
    payload = {"messages": messages, "max_tokens": 7, "temperature": 0.2, "stop": "END", "stream": True}
    body = anthropic.to_request(payload, messages, "claude-x")
    assert body == {
        "model": "claude-x",
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hi\n\nagain"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ],
        "max_tokens": 7,
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "stream": True,
    }
    assert anthropic.to_request({}, [{"role": "user", "content": "x"}], "m")["max_tokens"] == 1024
    assert anthropic.messages_url("https://api.anthropic.com") == "https://api.anthropic.com/v1/messages"
    assert anthropic.messages_url("http://h/v1/") == "http://h/v1/messages"


def test_response_translation_and_garbage():
    message = {
        "type": "message",
        "id": "msg_1",
        "model": "c",
        "content": [{"type": "text", "text": "Hey"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 4, "output_tokens": 2},
    }
    chat, usage = anthropic.from_response(message, chat=True)
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "Hey"}
    assert chat["choices"][0]["finish_reason"] == "length"
    assert chat["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert usage == pricing.Usage(4, 2)
    text, _ = anthropic.from_response(message, chat=False)
    assert text["object"] == "text_completion" and text["choices"][0]["text"] == "Hey"
    with pytest.raises(ValueError):
        anthropic.from_response({"error": "nope"}, chat=True)


def _event(kind: str, data: dict[str, object]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def test_stream_translation():
    events = (
        _event("message_start", {"message": {"id": "msg_1", "model": "c", "usage": {"input_tokens": 9}}})
        + _event("ping", {})
        + _event("content_block_delta", {"delta": {"type": "text_delta", "text": "Hel"}})
        + _event("content_block_delta", {"delta": {"type": "text_delta", "text": "lo"}})
        + _event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}})
        + _event("message_stop", {})
    )
    translator = anthropic.StreamTranslator(chat=True, include_usage=True)
    out = b"".join(translator.feed(events[i : i + 11]) for i in range(0, len(events), 11))
    payloads = [streams.event_data(e) for e in streams.split_events(out)]
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 11
    assert translator.done and translator.usage == pricing.Usage(9, 2)
    with pytest.raises(ValueError):
        anthropic.StreamTranslator(True, False).feed(_event("error", {"error": {"message": "overloaded"}}))


def test_text_parts_that_are_not_strings_carry_no_text():
    """A text part with a number or object as its text used to raise TypeError (a 500) in translation."""
    content = [{"type": "text", "text": 5}, {"type": "text", "text": "kept"}, {"type": "text", "text": {}}]
    body = anthropic.to_request({}, [{"role": "user", "content": content}], "m")
    assert body["messages"] == [{"role": "user", "content": "kept"}]
