"""One captured trace: what the request path hands over (``Raw``, no copying or parsing) and the record
the spool and the store hold (one JSON object per line, built and redacted off the request path).

Record fields (schema ``v`` 1): ``id``, ``time`` (UTC, ISO 8601), ``fleet``, ``task``, ``kind`` (chat or
completions), ``model`` (the serving model or fallback), ``cloud`` (served by a cloud fallback),
``fellBack`` (not the task's first choice), ``reason`` (the route reason), ``key`` (access policy name or
null), ``classifierScore``, ``latencyMs``, ``stream``, ``usage`` {promptTokens, completionTokens} or null,
``messages`` (the request's, redacted), ``answer`` (redacted text) and ``finishReason``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flotilla.capturing.redacting import Redactor

SCHEMA = 1


@dataclass(slots=True)
class Raw:
    """What the router hands over for one answered request: references only (the body bytes it already
    has, the stream's chunks as relayed), parsed and redacted later by the spool writer."""

    fleet: str
    task: str
    kind: str
    model: str
    cloud: bool
    fell_back: bool
    reason: str
    key: str | None
    score: float
    latency: float
    wall_time: float
    stream: bool
    messages: Sequence[Mapping[str, Any]]
    body: bytes | None = None
    chunks: Sequence[bytes] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def _answer_of_body(body: bytes) -> tuple[str, str | None, dict[str, int] | None]:
    data = json.loads(body)
    choice = data["choices"][0]
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else choice.get("text")
    usage = data.get("usage")
    counted = None
    if isinstance(usage, dict):
        counted = {
            "promptTokens": int(usage.get("prompt_tokens") or 0),
            "completionTokens": int(usage.get("completion_tokens") or 0),
        }
    return text if isinstance(text, str) else "", choice.get("finish_reason"), counted


def _answer_of_chunks(chunks: Sequence[bytes]) -> tuple[str, str | None, dict[str, int] | None]:
    """The text, finish reason and usage of an OpenAI SSE stream as the client received it."""
    parts: list[str] = []
    finish: str | None = None
    counted: dict[str, int] | None = None
    for line in b"".join(chunks).split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        event = json.loads(payload)
        if not isinstance(event, dict):
            continue
        usage = event.get("usage")
        if isinstance(usage, dict):
            counted = {
                "promptTokens": int(usage.get("prompt_tokens") or 0),
                "completionTokens": int(usage.get("completion_tokens") or 0),
            }
        for choice in event.get("choices") or ():
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str):
                parts.append(text)
            finish = choice.get("finish_reason") or finish
    return "".join(parts), finish, counted


def record(raw: Raw, redactor: Redactor) -> dict[str, Any]:
    """The stored record of ``raw``, redacted; ValueError/KeyError/TypeError for an unreadable answer."""
    if raw.chunks is not None:
        answer, finish, usage = _answer_of_chunks(raw.chunks)
    else:
        answer, finish, usage = _answer_of_body(raw.body or b"{}")
    if raw.prompt_tokens is not None:  # the router's own count (a stream's usage event may be stripped)
        usage = {"promptTokens": raw.prompt_tokens, "completionTokens": raw.completion_tokens or 0}
    messages = [
        {
            **{k: v for k, v in m.items() if k in ("role", "name")},
            "content": redactor.content(m.get("content")),
        }
        for m in raw.messages
    ]
    return {
        "v": SCHEMA,
        "id": uuid.uuid4().hex,
        "time": datetime.fromtimestamp(raw.wall_time, UTC).isoformat(timespec="milliseconds"),
        "fleet": raw.fleet,
        "task": raw.task,
        "kind": raw.kind,
        "model": raw.model,
        "cloud": raw.cloud,
        "fellBack": raw.fell_back,
        "reason": raw.reason,
        "key": raw.key,
        "classifierScore": round(raw.score, 4),
        "latencyMs": round(raw.latency * 1000, 1),
        "stream": raw.stream,
        "usage": usage,
        "messages": messages,
        "answer": redactor.text(answer),
        "finishReason": finish,
    }


def line(record: Mapping[str, Any]) -> bytes:
    """One JSONL line (ASCII escapes: a lone surrogate in a prompt must not break the segment)."""
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"
