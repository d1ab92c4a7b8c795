"""Translate between OpenAI chat/completions and the Anthropic Messages API, streaming included.

Only what both APIs can express is translated: text content, system prompts, sampling parameters, stop
sequences, usage and finish reasons. Images, tools and logprobs are not (the request fails over to the next
candidate with a clear 4xx from the provider instead of silently losing meaning).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from flotilla.router import pricing, streams

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def messages_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(  # a part whose text is not a string carries no text (as for the classifier)
            p["text"]
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def to_request(
    payload: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], model: str
) -> dict[str, Any]:
    """An Anthropic Messages request for an OpenAI chat (or completions, as one user turn) request."""
    system = [_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        role = "assistant" if role == "assistant" else "user"
        text = _text(message.get("content"))
        if turns and turns[-1]["role"] == role:  # Anthropic wants alternating turns
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": role, "content": text})
    body: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": payload.get("max_completion_tokens") or payload.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p"):
        if payload.get(name) is not None:
            body[name] = payload[name]
    stop = payload.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if payload.get("stream"):
        body["stream"] = True
    return body


def _usage_dict(usage: pricing.Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def from_response(body: Mapping[str, Any], chat: bool) -> tuple[dict[str, Any], pricing.Usage | None]:
    """An OpenAI ``chat.completion`` (or ``text_completion``) for an Anthropic message; raises on garbage."""
    if body.get("type") != "message" or not isinstance(body.get("content"), list):
        raise ValueError("not an Anthropic message object")
    text = _text(body["content"])
    raw = body.get("usage")
    usage = (
        pricing.usage(raw.get("input_tokens", 0), raw.get("output_tokens", 0))
        if isinstance(raw, Mapping)
        else None
    )
    finish = _FINISH.get(str(body.get("stop_reason")), "stop")
    choice: dict[str, Any] = (
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        if chat
        else {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    )
    translated: dict[str, Any] = {
        "id": str(body.get("id") or f"chatcmpl-{uuid.uuid4().hex}"),
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": str(body.get("model", "")),
        "choices": [choice],
    }
    if usage is not None:  # unusable counts are left out, as an OpenAI server without usage would
        translated["usage"] = _usage_dict(usage)
    return translated, usage


class StreamTranslator:
    """Anthropic SSE events in, OpenAI ``chat.completion.chunk`` (or completion) SSE events out."""

    def __init__(self, chat: bool, include_usage: bool) -> None:
        self._chat = chat
        self._include_usage = include_usage
        self._buffer = b""
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._model = ""
        self._created = int(time.time())
        self._prompt = 0
        self._completion = 0
        self._finish = "stop"
        self.usage: pricing.Usage | None = None
        self.done = False
        self.error: str | None = None  # an error event raises instead (``SseRelay`` sets it)

    def _chunk(self, delta: str | None, finish: str | None, usage: bool = False) -> bytes:
        if self._chat:
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {} if delta is None else {"content": delta},
                "finish_reason": finish,
            }
            if delta is not None and not self._completion and finish is None:
                choice["delta"]["role"] = "assistant"
        else:
            choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk" if self._chat else "text_completion",
            "created": self._created,
            "model": self._model,
            "choices": [] if usage else [choice],
        }
        if usage and self.usage is not None:
            chunk["usage"] = _usage_dict(self.usage)
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    def feed(self, chunk: bytes) -> bytes:
        """Translate every complete event in the buffered input; raises ValueError on garbage."""
        data = self._buffer + chunk
        end = streams.complete_events_end(data)
        complete, self._buffer = data[:end], data[end:]
        out: list[bytes] = []
        for event in streams.split_events(complete):
            raw = streams.event_data(event)
            if not raw:
                continue
            payload = json.loads(raw)
            out.append(self._event(payload))
        return b"".join(out)

    def _event(self, event: Mapping[str, Any]) -> bytes:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = str(message.get("id") or self._id)
            self._model = str(message.get("model") or "")
            self._prompt = pricing.count((message.get("usage") or {}).get("input_tokens", 0)) or 0
            return self._chunk("", None) if self._chat else b""
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            return self._chunk(str(delta.get("text", "")), None) if delta.get("type") == "text_delta" else b""
        if kind == "message_delta":
            self._finish = _FINISH.get(str((event.get("delta") or {}).get("stop_reason")), "stop")
            reported = pricing.count((event.get("usage") or {}).get("output_tokens", self._completion))
            self._completion = self._completion if reported is None else reported
            return b""
        if kind == "message_stop":
            self.done = True
            self.usage = pricing.Usage(self._prompt, self._completion)
            out = self._chunk(None, self._finish)
            if self._include_usage:
                out += self._chunk(None, None, usage=True)
            return out + streams.DONE
        if kind == "error":
            error = event.get("error") or {}
            raise ValueError(f"provider stream error: {error.get('message', 'unknown')}")
        return b""  # ping, content_block_start/stop
