"""Relay an OpenAI-shaped SSE stream byte for byte while picking out its ``usage``.

The router asks upstreams for ``stream_options.include_usage`` so every stream can be priced; when the client
did not ask for it, the extra usage-only chunk is dropped so the client sees what it asked for. Chunks
without a usage object are forwarded untouched (one regex search per read, no JSON parsing); only the events
that mention usage are parsed.
"""

from __future__ import annotations

import json
import re
import time

from flotilla.router import pricing

_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_CONTENT = re.compile(rb'"(?:content|text)"\s*:\s*"[^"]')  # a chunk that carries generated text
_BLANK = re.compile(rb"\n\r?\n")
_ERROR = b'"error"'
DONE = b"data: [DONE]\n\n"


def complete_events_end(buffer: bytes | bytearray) -> int:
    """Index just past the last complete SSE event (events end in a blank line, LF or CRLF)."""
    lf, crlf = buffer.rfind(b"\n\n"), buffer.rfind(b"\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)


def _event_bounds(data: bytes, pos: int) -> tuple[int, int]:
    """Start of the event around ``pos`` and the index just past its blank line (or the end of ``data``)."""
    start = complete_events_end(data[:pos])
    blank = _BLANK.search(data, pos)
    return start, blank.end() if blank else len(data)


def split_events(data: bytes) -> list[bytes]:
    """Complete events in ``data`` (without their blank-line terminators)."""
    return [e for e in re.split(rb"\r?\n\r?\n", data) if e.strip()]


def event_data(event: bytes) -> bytes:
    """The joined ``data:`` lines of one event."""
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines)


def looks_like_sse(first: bytes) -> bool:
    """Whether the first bytes can start an event stream (catches garbage before committing)."""
    head = first.lstrip()[:6]
    return head.startswith((b"data:", b"event:", b":", b"id:", b"retry:"))


class SseRelay:
    """Feed upstream bytes, forward what ``feed`` returns; ``usage`` holds the usage of the stream.

    Some servers (llama-cpp-python's) ignore ``include_usage``. Then the usage is counted instead: one
    completion token per content-bearing chunk (how llama.cpp streams) and ``prompt_estimate`` for the
    prompt; a client that asked for usage gets it in a final chunk marked ``"estimated": true``.
    """

    __slots__ = (
        "_buffer", "_chunks", "_drop_usage_only", "_prompt_estimate", "_reported", "done", "error", "usage"
    )  # fmt: skip

    def __init__(self, drop_usage_only: bool, prompt_estimate: int = 0) -> None:
        self._buffer = b""
        self._drop_usage_only = drop_usage_only
        self._prompt_estimate = prompt_estimate
        self._chunks = 0
        self._reported = False
        """The upstream sent a usage object (even an unusable one: then the stream has no usage, it is not
        estimated, whichever read its usage and ``[DONE]`` arrive in)."""
        self.usage: pricing.Usage | None = None
        self.done = False
        self.error: str | None = None
        """The message of an error event the upstream sent mid-stream: ``feed`` returns what came before it
        and the stream counts as broken (the event itself is not forwarded)."""

    def feed(self, chunk: bytes) -> bytes:
        data = self._buffer + chunk if self._buffer else chunk
        end = complete_events_end(data)
        complete, self._buffer = data[:end], data[end:]
        if not complete:
            return complete
        if _ERROR in complete:  # a byte search; events are parsed only when it hits
            complete = self._cut_error(complete)
        self._chunks += len(_CONTENT.findall(complete))
        if b"[DONE]" in complete:
            self.done = True
            if self.usage is None and not self._reported and not _USAGE.search(complete):
                self.usage = pricing.Usage(self._prompt_estimate, self._chunks)
                if not self._drop_usage_only:
                    complete = complete.replace(
                        b"data: [DONE]", _usage_event(self.usage) + b"data: [DONE]", 1
                    )
        match = _USAGE.search(complete)
        if match is None:
            return complete
        # Only the events that mention usage are parsed; the bytes around them are forwarded as they are.
        out: list[bytes] = []
        kept_from = 0
        while match is not None:
            start, end = _event_bounds(complete, match.start())
            try:
                payload = json.loads(event_data(complete[start:end]))
            except (ValueError, RecursionError):
                payload = None
            if isinstance(payload, dict):
                self._reported = self._reported or isinstance(payload.get("usage"), dict)
                self.usage = pricing.usage_of(payload) or self.usage
                if self._drop_usage_only and not payload.get("choices"):
                    out.append(complete[kept_from:start])
                    kept_from = end
            match = _USAGE.search(complete, end)
        if not kept_from:
            return complete
        out.append(complete[kept_from:])
        return b"".join(out)

    def _cut_error(self, complete: bytes) -> bytes:
        """``complete`` up to its first error event (setting ``error``), or unchanged when it has none."""
        start = 0
        for match in _BLANK.finditer(complete):
            event = complete[start : match.start()]
            if _ERROR in event:
                try:
                    payload = json.loads(event_data(event))
                except (ValueError, RecursionError):
                    payload = None
                if isinstance(payload, dict) and "error" in payload and not payload.get("choices"):
                    error = payload["error"]
                    message = error.get("message") if isinstance(error, dict) else error
                    self.error = f"error event: {message}"
                    self._buffer = b""
                    return complete[:start]
            start = match.end()
        return complete

    def flush(self) -> bytes:
        """Whatever trailing bytes never ended in a blank line (forwarded as they are)."""
        rest, self._buffer = self._buffer, b""
        return rest


def _usage_event(usage: pricing.Usage) -> bytes:
    counts = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "estimated": True,
    }
    event = {
        "id": "flotilla-usage",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "",
        "choices": [],
        "usage": counts,
    }
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def estimate_prompt_tokens(texts: list[str]) -> int:
    """About four characters a token, plus a few per message for the chat template."""
    return sum(len(t) // 4 + 4 for t in texts)
