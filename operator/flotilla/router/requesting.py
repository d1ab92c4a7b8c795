"""Validate an incoming completion request without a schema library: the hot path parses JSON once.

Only the fields the router acts on are checked (``model``, ``messages``/``prompt``, ``stream``,
``stream_options``, ``max_tokens``, ``stop``); everything else is passed to the model server untouched, so new
OpenAI parameters work without a router release. Hand-written rather than pydantic because a full model of the
OpenAI request would reject or rewrite fields the upstream understands and costs ~10x more per request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flotilla.router.replies import RequestError

Kind = Literal["chat", "completions"]
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(slots=True)
class ParsedRequest:
    """One validated request: the body (forwarded, with ``model`` rewritten) plus what routing needs."""

    kind: Kind
    payload: dict[str, Any]
    model: str | None
    stream: bool
    wants_usage: bool
    messages: Sequence[Mapping[str, Any]]
    raw: bytes = b""  # the client's body, forwarded as is when nothing in it must change


def parse(kind: Kind, body: bytes) -> ParsedRequest:
    """Parse and check ``body``; raise ``RequestError`` (400) naming the offending field."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    except RecursionError:  # the C decoder recurses per nesting level: ~100 KB of "[" exhaust the stack
        raise RequestError(400, "request body is not valid JSON: nested too deeply", "invalid_json") from None
    if not isinstance(payload, dict):
        raise RequestError(400, "request body must be a JSON object", "invalid_type")
    model = payload.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise _type_error("model", "a non-empty string")
    stream = payload.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _type_error("stream", "a boolean")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _type_error("stream_options", "an object")
    for field in ("max_tokens", "max_completion_tokens", "n"):
        value = payload.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise _type_error(field, "a positive integer")
    stop = payload.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):  # translated for Anthropic providers (stop_sequences), so its type matters here
        raise _type_error("stop", "a string or an array of strings")
    messages = _messages(payload) if kind == "chat" else _prompt(payload)
    wants_usage = bool(options and options.get("include_usage"))
    return ParsedRequest(kind, payload, model, stream, wants_usage, messages, body)


def _messages(payload: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    if "messages" not in payload:
        raise RequestError(400, "missing required field 'messages'", "missing_required_parameter", "messages")
    messages = payload["messages"]
    if not isinstance(messages, list) or not messages:
        raise _type_error("messages", "a non-empty array of message objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _type_error(f"messages[{i}]", "an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:  # a list or object role is not even hashable
            raise _type_error(f"messages[{i}].role", f"one of {', '.join(sorted(_ROLES))}")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _type_error(f"messages[{i}].content", "a string or an array of content parts")
    return messages


def _prompt(payload: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    if "prompt" not in payload:
        raise RequestError(400, "missing required field 'prompt'", "missing_required_parameter", "prompt")
    prompt = payload["prompt"]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt) and prompt:
        text = "\n".join(prompt)
    elif isinstance(prompt, str):
        text = prompt
    else:
        raise _type_error("prompt", "a string or a non-empty array of strings")
    return [{"role": "user", "content": text}]


def content_text(content: object, joiner: str = "") -> str:
    """The text of a message's ``content``: the string itself, or its text parts joined by ``joiner`` (a
    part whose text is not a string carries none, as for the classifier)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return joiner.join(
            p["text"]
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def _type_error(field: str, expected: str) -> RequestError:
    return RequestError(400, f"'{field}' must be {expected}", "invalid_type", field)
