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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from flotilla.capturing.redacting import Redactor

SCHEMA = 1
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


def _loads(data: bytes) -> Any:
    """``orjson`` (3-4 times faster than ``json`` on an answer), and ``json`` for what it alone accepts
    (``NaN``, other Unicode encodings): a trace is dropped only when neither reads it."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _counted(usage: object) -> dict[str, int] | None:
    """An OpenAI ``usage`` object as the record's ``usage`` (None when there is none)."""
    if not isinstance(usage, dict):
        return None
    return {
        "promptTokens": int(usage.get("prompt_tokens") or 0),
        "completionTokens": int(usage.get("completion_tokens") or 0),
    }


def _answer_of_body(body: bytes) -> tuple[str, str | None, dict[str, int] | None]:
    data = _loads(body)
    choice = data["choices"][0]
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else choice.get("text")
    counted = _counted(data.get("usage"))
    return text if isinstance(text, str) else "", choice.get("finish_reason"), counted


_EVENT, _BETWEEN, _LAST = b"data: ", b"\n\ndata: ", b"\n\ndata: [DONE]\n\n"


def _events(stream: bytes) -> Any:
    """The decoded ``data`` payloads of an SSE stream, as one JSON array: one decoder call for all events.

    A stream as OpenAI-compatible servers write it (every event one ``data: `` line, ``[DONE]`` last)
    becomes that array by one slice and one replace, in C. Anything else (comments, other fields, CRLF,
    no ``[DONE]``) makes that array invalid JSON (a JSON value cannot hold a raw newline), and the lines are
    then read one by one."""
    if stream.startswith(_EVENT) and stream.endswith(_LAST):
        inner = stream[len(_EVENT) : -len(_LAST)]
        try:
            return orjson.loads(b"[" + inner.replace(_BETWEEN, b",") + b"]")
        except orjson.JSONDecodeError:
            pass
    payloads: list[bytes] = []
    for line in stream.split(b"\n"):
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload and payload != b"[DONE]":
                payloads.append(payload)
    return _loads(b"[" + b",".join(payloads) + b"]")


def _answer_of_chunks(chunks: Sequence[bytes]) -> tuple[str, str | None, dict[str, int] | None]:
    """The text, finish reason and usage of an OpenAI SSE stream as the client received it."""
    parts: list[str] = []
    finish: str | None = None
    counted: dict[str, int] | None = None
    for event in _events(b"".join(chunks)):
        if not isinstance(event, dict):
            continue
        counted = _counted(event.get("usage")) or counted
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


def _message(message: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """One request message as stored: its role and name, and its content redacted."""
    stored = {key: message[key] for key in ("role", "name") if key in message}
    stored["content"] = redactor.content(message.get("content"))
    return stored


def line(raw: Raw, redactor: Redactor) -> bytes:
    """The stored record of ``raw``, redacted, as one JSONL line (UTF-8); ValueError/KeyError/TypeError for
    an unreadable answer. Encoded by ``orjson`` (a whole record in about a microsecond); a record it refuses
    (a lone surrogate in a prompt, an integer beyond 64 bits in a content part) is written by ``json`` with
    ASCII escapes, so neither can break the segment."""
    if raw.chunks is not None:
        answer, finish, usage = _answer_of_chunks(raw.chunks)
    else:
        answer, finish, usage = _answer_of_body(raw.body or b"{}")
    if raw.prompt_tokens is not None:  # the router's own count (a stream's usage event may be stripped)
        usage = {"promptTokens": raw.prompt_tokens, "completionTokens": raw.completion_tokens or 0}
    record: dict[str, Any] = {
        "v": SCHEMA,
        "id": os.urandom(16).hex(),
        "time": _time(raw.wall_time),
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
        "messages": [_message(m, redactor) for m in raw.messages],
        "answer": redactor.text(answer),
        "finishReason": finish,
    }
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError: what it cannot encode, json can (NaN and inf become null)
        for field in ("classifierScore", "latencyMs"):
            record[field] = record[field] if math.isfinite(record[field]) else None
        return (json.dumps(record, separators=(",", ":")) + "\n").encode()
