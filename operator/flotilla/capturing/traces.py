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
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from flotilla.capturing.redacting import Redactor

SCHEMA = 1
_quote: Callable[[str], str] = encode_basestring_ascii  # C: a JSON string literal, ASCII escapes
_json = json.JSONEncoder(separators=(",", ":")).encode  # anything else (content parts, odd values)
_BOOL = ("false", "true")
LARGE_CONTENT = 1 << 20
"""What ``size`` counts for content that is not a string (parts: built in a worker thread, to be safe)."""


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


def size(raw: Raw) -> int:
    """Roughly how much text building ``raw`` handles (answer bytes and string contents)."""
    answer = len(raw.body) if raw.body is not None else sum(len(c) for c in raw.chunks or ())
    prompt = 0
    for message in raw.messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        prompt += len(content) if isinstance(content, str) else 0 if content is None else LARGE_CONTENT
    return answer + prompt


def answer_of(body: bytes | None, chunks: Sequence[bytes] | None) -> tuple[str, str | None]:
    """The answer text and finish reason of a plain body or of an SSE stream as the client received it
    (ValueError, KeyError, IndexError or TypeError when it is not an OpenAI answer)."""
    text, finish, _ = _answer_of_chunks(chunks) if chunks is not None else _answer_of_body(body or b"")
    return text, finish


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
    """The text, finish reason and usage of an OpenAI SSE stream as the client received it (its events
    decoded as one JSON array: one decoder call instead of one per event, half the cost)."""
    payloads: list[bytes] = []
    for line in b"".join(chunks).split(b"\n"):
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload and payload != b"[DONE]":
                payloads.append(payload)
    parts: list[str] = []
    finish: str | None = None
    counted: dict[str, int] | None = None
    for event in json.loads(b"[" + b",".join(payloads) + b"]"):
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


_last_second: tuple[int, str] = (-1, "")
"""The last whole second formatted: traces come hundreds a second, so ``strftime`` runs once a second."""


def _time(wall_time: float) -> str:
    """ISO 8601 UTC with milliseconds, ``2026-12-07T00:47:57.750+00:00``."""
    global _last_second
    seconds, last = int(wall_time), _last_second  # one read: a worker thread may build traces too
    if seconds != last[0]:
        last = _last_second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    millis = min(999, int((wall_time - seconds) * 1000))
    return f"{last[1]}.{millis:03d}+00:00"


def _number(value: float) -> str:
    """A float as JSON (``repr`` is what json writes for a finite float, without building an encoder)."""
    return repr(value) if math.isfinite(value) else "null"


def _message(message: Mapping[str, Any], redactor: Redactor) -> str:
    """One request message as stored: its role and name, and its content redacted."""
    fields = [f'"{k}":{_json(message[k])}' for k in ("role", "name") if k in message]
    content = redactor.content(message.get("content"))
    fields.append(f'"content":{_quote(content) if isinstance(content, str) else _json(content)}')
    return "{" + ",".join(fields) + "}"


def line(raw: Raw, redactor: Redactor) -> bytes:
    """The stored record of ``raw``, redacted, as one JSONL line; ValueError/KeyError/TypeError for an
    unreadable answer. Assembled from pre-quoted parts rather than a dict through ``json.dumps`` (half the
    cost; ASCII escapes either way, so a lone surrogate in a prompt cannot break the segment)."""
    if raw.chunks is not None:
        answer, finish, usage = _answer_of_chunks(raw.chunks)
    else:
        answer, finish, usage = _answer_of_body(raw.body or b"{}")
    if raw.prompt_tokens is not None:  # the router's own count (a stream's usage event may be stripped)
        usage = {"promptTokens": raw.prompt_tokens, "completionTokens": raw.completion_tokens or 0}
    counted = "null"
    if usage is not None:
        prompt, completion = int(usage["promptTokens"]), int(usage["completionTokens"])
        counted = f'{{"promptTokens":{prompt},"completionTokens":{completion}}}'
    messages = ",".join(_message(m, redactor) for m in raw.messages)
    score, latency = _number(round(raw.score, 4)), _number(round(raw.latency * 1000, 1))
    finished = _quote(finish) if isinstance(finish, str) else _json(finish)
    text = (
        f'{{"v":{SCHEMA},"id":"{os.urandom(16).hex()}","time":"{_time(raw.wall_time)}",'
        f'"fleet":{_quote(raw.fleet)},"task":{_quote(raw.task)},"kind":{_quote(raw.kind)},'
        f'"model":{_quote(raw.model)},"cloud":{_BOOL[raw.cloud]},"fellBack":{_BOOL[raw.fell_back]},'
        f'"reason":{_quote(raw.reason)},"key":{"null" if raw.key is None else _quote(raw.key)},'
        f'"classifierScore":{score},"latencyMs":{latency},'
        f'"stream":{_BOOL[raw.stream]},"usage":{counted},"messages":[{messages}],'
        f'"answer":{_quote(redactor.text(answer))},"finishReason":{finished}}}\n'
    )
    return text.encode()
