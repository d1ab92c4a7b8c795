"""The stored line of a trace: one line of UTF-8 JSON with every field, for plain bodies, streams, content
parts and any text (lone surrogates included, which orjson refuses and json escapes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.capturing import traces
from flotilla.capturing.redacting import Redactor

REDACTOR = Redactor()
BODY = json.dumps(
    {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 1},
    }
).encode()


def _raw(messages: Any, **fields: Any) -> traces.Raw:
    base: dict[str, Any] = dict(
        fleet="f", task="math", kind="chat", model="m", cloud=True, fell_back=True, reason="fallback:x",
        key="team", score=0.123456, latency=0.01234, wall_time=1765068477.75, stream=False, messages=messages,
    )  # fmt: skip
    base.update(fields)
    return traces.Raw(**base)


def test_a_plain_answer_line_holds_every_field() -> None:
    messages = [{"role": "user", "name": "ann", "content": "2+2? mail ann@example.com", "extra": 1}]
    line = traces.line(_raw(messages, body=BODY), REDACTOR)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    record = json.loads(line)
    assert len(record.pop("id")) == 32
    assert record == {
        "v": 1, "time": "2025-12-07T00:47:57.750+00:00", "fleet": "f", "task": "math", "kind": "chat",
        "model": "m", "cloud": True, "fellBack": True, "reason": "fallback:x", "key": "team",
        "classifierScore": 0.1235, "latencyMs": 12.3, "stream": False,
        "usage": {"promptTokens": 7, "completionTokens": 1},
        "messages": [{"role": "user", "name": "ann", "content": "2+2? mail [EMAIL]"}],
        "answer": "4", "finishReason": "stop",
    }  # fmt: skip


def test_a_stream_line_joins_its_deltas_across_cut_chunks() -> None:
    events = [
        {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    ]
    stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    chunks = [stream[i : i + 7] for i in range(0, len(stream), 7)]  # cut anywhere, as relayed
    record = json.loads(traces.line(_raw([], chunks=chunks, stream=True, key=None), REDACTOR))
    assert (record["answer"], record["finishReason"], record["key"]) == ("Hello", "stop", None)
    assert record["usage"] == {"promptTokens": 3, "completionTokens": 2}


def test_content_parts_and_missing_content() -> None:
    parts = [{"type": "text", "text": "key sk-abcdefghijklmnopqrstuv"}, {"type": "image_url"}]
    messages = [{"role": "user", "content": parts}, {"role": "assistant", "content": None}]
    record = json.loads(traces.line(_raw(messages, body=BODY), REDACTOR))
    redacted = [{"type": "text", "text": "key [SECRET]"}, {"type": "text", "text": "[NON-TEXT CONTENT]"}]
    assistant = {"role": "assistant", "content": None}
    assert record["messages"] == [{"role": "user", "content": redacted}, assistant]


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.floats(0, 1), st.floats(0, 1e4))
def test_any_text_round_trips(prompt: str, task: str, wall: float, latency: float) -> None:
    line = traces.line(_raw([{"role": "user", "content": prompt}], body=BODY, task=task, wall_time=wall * 2e9,
                            latency=latency), Redactor([]))  # fmt: skip
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    record = json.loads(line)
    assert record["task"] == task and record["latencyMs"] == round(latency * 1000, 1)
    assert record["messages"][0]["content"] == Redactor([]).text(prompt)


def test_what_orjson_refuses_is_written_by_json() -> None:
    """A lone surrogate (valid in a JSON request, not in UTF-8) and an integer beyond 64 bits in a content
    part: the line is ASCII-escaped JSON that reads back to the same values."""
    parts = [{"type": "text", "text": "half \ud83d of a pair", "n": 2**70}]
    line = traces.line(_raw([{"role": "user", "content": parts}], body=BODY), REDACTOR)
    assert line.isascii() and line.count(b"\n") == 1
    assert json.loads(line)["messages"][0]["content"] == parts


def test_an_answer_only_json_reads_is_kept() -> None:
    """orjson refuses ``NaN`` (some servers write it in logprobs); the answer is still captured."""
    body = BODY.replace(b'"index": 0', b'"index": 0, "logprobs": {"x": NaN}')
    assert json.loads(traces.line(_raw([], body=body), REDACTOR))["answer"] == "4"


def test_an_unreadable_answer_raises() -> None:
    for body in (b"not json", b"{}", b'{"choices": []}'):
        try:
            traces.line(_raw([], body=body), REDACTOR)
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        raise AssertionError(f"{body!r} was accepted")


def test_timestamps_follow_the_clock_across_seconds() -> None:
    """The formatted second is reused only within that second (ISO 8601, UTC, milliseconds)."""
    stamps = [1765068477.75, 1765068477.125, 1765068478.5, 1700000000.0, 1765068477.25]
    for wall in stamps:
        expected = datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")
        assert traces._time(wall) == expected
