"""Splice a continuation into a stream the client is already reading, without repeating or reshaping it.

When a stream breaks mid-way (``continuing``), the bytes the client already got are read back into a
``Partial`` (its text, and the ``id``/``object``/``created``/``model`` of its chunks). A ``Splice`` then
rewrites the next upstream's OpenAI-shaped events so they look like more of the same stream: same identity,
no second ``role``, no usage (the sum of every leg is sent once at the end, by ``tail``), and no text the
client already has (an Anthropic prefill may not end in whitespace, so that whitespace is trimmed off the
continuation's start instead). Pure functions: parsing happens only after a break, never on the hot path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flotilla.router import pricing, streams

_IDENTITY = ("id", "object", "created", "model")


@dataclass(slots=True)
class Partial:
    """What the client already has of a stream that broke."""

    identity: dict[str, Any] = field(default_factory=dict)
    """``id``, ``object``, ``created`` and ``model`` of the first chunk (every later chunk repeats them)."""
    text: str = ""
    chunks: int = 0
    """Content-bearing chunks: the completion tokens when a leg's usage has to be estimated."""
    role_sent: bool = False
    finished: bool = False
    """A ``finish_reason`` was relayed: the answer is whole, only its end (``[DONE]``) went missing."""
    continuable: bool = True
    """False when tool calls or several choices were streamed: those cannot be continued as text."""
    usage_sent: bool = False
    """The client already got a usage chunk (the stream broke after it)."""


def partial_of(sent: bytes, chat: bool) -> Partial:
    """Read back the complete OpenAI-shaped events the client was sent."""
    partial = Partial()
    parts: list[str] = []
    for event in streams.split_events(sent):
        raw = streams.event_data(event)
        if not raw or raw == b"[DONE]":
            continue
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if not isinstance(payload, dict) or "error" in payload:
            continue
        if isinstance(payload.get("usage"), dict):
            partial.usage_sent = True
        for key in _IDENTITY:
            if key in payload and key not in partial.identity:
                partial.identity[key] = payload[key]
        choices = payload.get("choices")
        if not isinstance(choices, list):
            continue
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                partial.continuable = False
                continue
            source = choice.get("delta") if chat else choice
            if not isinstance(source, dict):
                continue
            if source.get("role"):
                partial.role_sent = True
            if source.get("tool_calls") or source.get("function_call"):
                partial.continuable = False
            text = source.get("content") if chat else source.get("text")
            if isinstance(text, str) and text:
                parts.append(text)
                partial.chunks += 1
            if choice.get("finish_reason") is not None:
                partial.finished = True
    partial.text = "".join(parts)
    return partial


class Splice:
    """Feed a continuation leg's OpenAI-shaped events; ``feed`` returns them as more of ``partial``'s stream.

    ``skip`` is text the client already has but the upstream was not shown (whitespace an Anthropic prefill
    had to drop): it is trimmed off the start of the continuation as long as the continuation repeats it.
    Raises ``ValueError`` on an error event (the leg broke).
    """

    def __init__(self, partial: Partial, chat: bool, skip: str = "") -> None:
        self._partial = partial
        self._chat = chat
        self._skip = skip
        self.text = ""
        self.chunks = 0
        self.usage: pricing.Usage | None = None
        self.estimated = False
        self.done = False

    def _trim(self, text: str) -> str:
        skip = self._skip
        if not skip:
            return text
        common = 0
        while common < len(text) and common < len(skip) and text[common] == skip[common]:
            common += 1
        if common == len(text):  # all of it repeats what the client has: wait for more
            self._skip = skip[common:]
            return ""
        self._skip = ""  # the continuation went its own way: trim no more
        return text[common:]

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for event in streams.split_events(data):
            raw = streams.event_data(event)
            if not raw:
                continue
            if raw == b"[DONE]":
                self.done = True
                continue
            payload = json.loads(raw)
            if not isinstance(payload, dict):
                continue
            if "error" in payload and not payload.get("choices"):
                error = payload["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise ValueError(f"error event: {message}")
            if "usage" in payload:
                usage = pricing.usage_of(payload)
                found = payload.pop("usage")
                if usage is not None:
                    self.usage = usage
                    self.estimated = isinstance(found, dict) and found.get("estimated") is True
            choices = [c for c in payload.get("choices") or () if self._choice(c)]
            if not choices:
                continue
            payload["choices"] = choices
            identity = self._partial.identity
            if identity:
                payload.update(identity)
            else:  # the broken leg sent no chunk: this one's identity is the stream's from now on
                identity.update((k, payload[k]) for k in _IDENTITY if k in payload)
            out.append(b"data: " + json.dumps(payload).encode() + b"\n\n")
        return b"".join(out)

    def _choice(self, choice: object) -> bool:
        """Rewrite one choice in place; False when nothing of it is left to send."""
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            return False
        finish = choice.get("finish_reason")
        if finish is not None:
            self._partial.finished = True
        if self._chat:
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice["delta"] = {}
            if self._partial.role_sent or self._partial.chunks:  # a role only opens a stream
                delta.pop("role", None)
            elif delta.get("role"):
                self._partial.role_sent = True
            text = delta.get("content")
            if isinstance(text, str):
                text = self._trim(text)
                if text:
                    delta["content"] = text
                else:
                    delta.pop("content")
            empty = not delta
        else:
            text = choice.get("text")
            if isinstance(text, str):
                text = choice["text"] = self._trim(text)
            empty = not text
        if isinstance(text, str) and text:
            self.text += text
            self.chunks += 1
        return not empty or finish is not None


def tail(
    partial: Partial, usage: pricing.Usage | None, estimated: bool, record: list[dict[str, Any]]
) -> bytes:
    """The end of a continued stream: the usage of every leg (when the client asked for usage, ``usage`` is
    not None), an SSE comment naming the switches (SDKs skip comments) and ``[DONE]``."""
    out = b""
    info = {"midstream_failovers": record}
    if usage is not None:
        counts: dict[str, Any] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        }
        if estimated:
            counts["estimated"] = True
        chunk = {**partial.identity, "choices": [], "usage": counts, "flotilla": info}
        out = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    return out + b": flotilla " + json.dumps(info).encode() + b"\n\n" + streams.DONE
