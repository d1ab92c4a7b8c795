"""Request bodies checked before llama.cpp: only its parameters pass, mistakes are BadRequest with a param."""

from __future__ import annotations

import pytest

from flotilla.packserve.requests import BadRequest, parse


def test_chat_keeps_llama_parameters_and_drops_the_rest() -> None:
    body = b'{"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "n": 1, '
    body += b'"stream": true}'
    assert parse(body, "chat") == {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "stream": True,
    }


def test_a_one_prompt_batch_is_the_prompt() -> None:
    assert parse(b'{"prompt": ["Once"], "temperature": 0}', "completions") == {
        "prompt": "Once",
        "temperature": 0,
    }


@pytest.mark.parametrize(
    ("body", "kind", "param"),
    [
        (b"[]", "chat", None),
        (b"\xff", "chat", None),
        (b'{"messages": [{"role": "user"}], "temperature": true}', "chat", "temperature"),
        (b'{"messages": [{"role": "user"}], "max_tokens": 0}', "chat", "max_tokens"),
        (b'{"messages": [{"role": "user", "content": 3}]}', "chat", "messages"),
        (b'{"messages": [{"role": "user"}], "stop": [1]}', "chat", "stop"),
        (b'{"prompt": ""}', "completions", "prompt"),
        (b'{"prompt": ["a", "b"]}', "completions", "prompt"),
    ],
)
def test_mistakes_name_their_parameter(body: bytes, kind: str, param: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(body, kind)  # type: ignore[arg-type]
    assert caught.value.param == param
