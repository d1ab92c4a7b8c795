"""Request validation: what is accepted, and the field named when it is not."""

from __future__ import annotations

import pytest

from flotilla.router import requesting
from flotilla.router.replies import RequestError


def test_chat_request_parsed():
    parsed = requesting.parse(
        "chat",
        b'{"model": "code", "stream": true, "stream_options": {"include_usage": true}, '
        b'"messages": [{"role": "user", "content": "hi"}], "tools": [], "seed": 3}',
    )
    assert (parsed.model, parsed.stream, parsed.wants_usage) == ("code", True, True)
    assert parsed.payload["seed"] == 3  # unknown fields pass through untouched


def test_completions_prompt_becomes_one_user_message():
    parsed = requesting.parse("completions", b'{"prompt": ["a", "b"]}')
    assert parsed.messages == [{"role": "user", "content": "a\nb"}] and parsed.model is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"messages": []}', "messages"),
        (b'{"messages": [1]}', "messages[0]"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": true}', "n"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream_options": 1}', "stream_options"),
        (b'{"messages": [{"role": "user", "content": "x"}], "model": ""}', "model"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stop": 5}', "stop"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stop": true}', "stop"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stop": ["a", 1]}', "stop"),
    ],
)
def test_bad_fields_are_named(body: bytes, param: str):
    with pytest.raises(RequestError) as caught:
        requesting.parse("chat", body)
    assert caught.value.status == 400 and caught.value.param == param


def test_invalid_utf8_is_a_400():
    with pytest.raises(RequestError) as caught:
        requesting.parse("chat", b"\xff\xfe")
    assert caught.value.code == "invalid_json"
