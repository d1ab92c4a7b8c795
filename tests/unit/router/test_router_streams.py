"""SSE relay: usage capture, dropping the usage-only chunk the client did not ask for, split events."""

from __future__ import annotations

from flotilla.router import pricing, streams

CHUNK = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'
USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}\n\n'


def test_relay_forwards_untouched_and_captures_usage():
    relay = streams.SseRelay(drop_usage_only=False)
    out = relay.feed(CHUNK) + relay.feed(USAGE) + relay.feed(streams.DONE)
    assert out == CHUNK + USAGE + streams.DONE
    assert relay.usage == pricing.Usage(3, 5) and relay.done


def test_relay_drops_usage_only_chunk_when_not_asked_and_handles_splits_and_crlf():
    relay = streams.SseRelay(drop_usage_only=True)
    data = (CHUNK + USAGE + streams.DONE).replace(b"\n\n", b"\r\n\r\n")
    out = b"".join(relay.feed(data[i : i + 7]) for i in range(0, len(data), 7)) + relay.flush()
    assert b"usage" not in out and out.count(b"data:") == 2
    assert relay.usage == pricing.Usage(3, 5) and relay.done


def test_null_usage_is_not_parsed_and_garbage_is_detected():
    relay = streams.SseRelay(drop_usage_only=True)
    chunk = b'data: {"choices": [{"delta": {}}], "usage": null}\n\n'
    assert relay.feed(chunk) == chunk and relay.usage is None
    assert streams.looks_like_sse(b"\n: keep-alive\n\ndata: x")
    assert not streams.looks_like_sse(b"<html>oops")
    assert not streams.looks_like_sse(b"")


def test_usage_counted_when_the_upstream_sends_none():
    chunks = [b'data: {"choices": [{"delta": {"role": "assistant", "content": ""}}]}\n\n']
    chunks += [b'data: {"choices": [{"delta": {"content": "tok%d"}}]}\n\n' % i for i in range(3)]
    chunks += [b'data: {"choices": [{"delta": {}, "finish_reason": "length"}]}\n\n', streams.DONE]
    silent = streams.SseRelay(drop_usage_only=True, prompt_estimate=11)
    out = b"".join(silent.feed(c) for c in chunks)
    assert out == b"".join(chunks) and silent.usage == pricing.Usage(11, 3)
    asked = streams.SseRelay(drop_usage_only=False, prompt_estimate=11)
    out = b"".join(asked.feed(c) for c in chunks)
    events = streams.split_events(out)
    assert events[-1] == b"data: [DONE]" and b'"estimated": true' in events[-2]
    assert b'"completion_tokens": 3' in events[-2] and asked.usage == pricing.Usage(11, 3)
    assert streams.estimate_prompt_tokens(["12345678", ""]) == 2 + 4 + 4


def test_unusable_usage_is_no_usage_whichever_read_it_arrives_in():
    content = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'
    bad = b'data: {"choices": [], "usage": {"prompt_tokens": -7, "completion_tokens": 2}}\n\n'
    for reads in ([content, bad, b"data: [DONE]\n\n"], [content, bad + b"data: [DONE]\n\n"]):
        relay = streams.SseRelay(drop_usage_only=False, prompt_estimate=5)
        for chunk in reads:
            relay.feed(chunk)
        assert relay.done and relay.usage is None
