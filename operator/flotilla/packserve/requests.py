"""Checking an OpenAI request body before it reaches llama.cpp, and OpenAI-shaped error bodies.

Pure functions (no Ray): a body that fails here is a 400 with an OpenAI error JSON, never a traceback.
Only the parameters llama-cpp-python understands are passed on; other OpenAI fields are ignored, as
llama.cpp's own server does.
"""

from __future__ import annotations

import json
from typing import Any, Literal

Kind = Literal["chat", "completions"]

# parameter -> accepted JSON types (bool is not a number here)
_NUMBERS = (int, float)
_COMMON: dict[str, tuple[type, ...]] = {
    "max_tokens": (int,),
    "temperature": _NUMBERS,
    "top_p": _NUMBERS,
    "top_k": (int,),
    "min_p": _NUMBERS,
    "presence_penalty": _NUMBERS,
    "frequency_penalty": _NUMBERS,
    "repeat_penalty": _NUMBERS,
    "seed": (int,),
    "stop": (str, list),
    "stream": (bool,),
}
_CHAT = {**_COMMON, "messages": (list,), "response_format": (dict,)}
_COMPLETIONS = {**_COMMON, "prompt": (str, list), "suffix": (str,), "echo": (bool,)}


class BadRequest(Exception):
    """The body is not a request this server can answer (HTTP 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def parse(raw: bytes, kind: Kind) -> dict[str, Any]:
    """The keyword arguments for ``create_chat_completion``/``create_completion`` from a request body."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    allowed = _CHAT if kind == "chat" else _COMPLETIONS
    required = "messages" if kind == "chat" else "prompt"
    if required not in body:
        raise BadRequest(f"'{required}' is required", required)
    kwargs: dict[str, Any] = {}
    for key, types in allowed.items():
        if key not in body or body[key] is None:
            continue
        value = body[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise BadRequest(f"'{key}' has the wrong type ({type(value).__name__})", key)
        kwargs[key] = value
    if "max_tokens" in kwargs and kwargs["max_tokens"] < 1:
        raise BadRequest("'max_tokens' must be at least 1", "max_tokens")
    if kind == "chat":
        _check_messages(kwargs["messages"])
    else:
        _check_prompt(kwargs["prompt"])
        if isinstance(kwargs["prompt"], list) and kwargs["prompt"] and isinstance(kwargs["prompt"][0], str):
            kwargs["prompt"] = kwargs["prompt"][0]  # the one-prompt batch OpenAI clients send
    stop = kwargs.get("stop")
    if isinstance(stop, list) and not all(isinstance(s, str) for s in stop):
        raise BadRequest("'stop' must be a string or a list of strings", "stop")
    return kwargs


def _check_messages(messages: list[Any]) -> None:
    if not messages:
        raise BadRequest("'messages' must not be empty", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a 'role'", "messages")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(f"messages[{i}].content must be a string or a list of parts", "messages")


def _check_prompt(prompt: str | list[Any]) -> None:
    if isinstance(prompt, list) and not (
        all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
        or (len(prompt) == 1 and isinstance(prompt[0], str))
    ):
        raise BadRequest("'prompt' must be a string, one string in a list, or a list of token ids", "prompt")
    if not prompt:
        raise BadRequest("'prompt' must not be empty", "prompt")
