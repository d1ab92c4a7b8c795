"""A fake OpenAI-compatible model server that is never the bottleneck of a router benchmark.

Every ``POST`` (``/v1/chat/completions``, ``/v1/completions``) gets the same small chat completion with
usage, streamed as SSE when the body asks for ``"stream": true``; every ``GET`` (``/health``, ``/v1/models``,
...) gets 200 with the one model ``fake``. Responses are pre-built bytes.

Hand-written on a raw ``asyncio.Protocol`` (on uvloop when installed) instead of starlette/aiohttp on
purpose: a framework spends most of its time in request parsing and routing, which would make the backend as
slow as the proxies it is supposed to measure. ``run.py`` measures this server's ceiling with the load
generator directly (the ``direct`` rows).

Run: ``python bench/router/backend.py --port 0`` prints ``READY <port>`` once it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

MODEL = "fake"
CONTENT_PIECES = ("Hello", " from", " the", " fake", " backend.")
USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": len(CONTENT_PIECES),
    "total_tokens": 12 + len(CONTENT_PIECES),
}
MAX_HEADER_BYTES = 64 * 1024
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _chat_completion() -> bytes:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(CONTENT_PIECES)},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    return _response("200 OK", "application/json", json.dumps(body).encode())


def _sse_chunk(delta: dict[str, str], finish: str | None, usage: bool, choices: bool = True) -> bytes:
    event: dict[str, object] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if choices
        else [],
    }
    if usage:
        event["usage"] = USAGE
    data = b"data: " + json.dumps(event).encode() + b"\n\n"
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _chat_stream(include_usage_chunk: bool) -> bytes:
    """The whole SSE response in one write: role, five content pieces, finish (with usage), [DONE].

    Usage rides on the finish chunk (like vLLM's continuous usage stats) so routers that price requests see
    it without asking; an OpenAI-style empty-choices usage chunk is added when the request sets
    ``include_usage``.
    """
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    head += b"transfer-encoding: chunked\r\n\r\n"
    chunks = [_sse_chunk({"role": "assistant", "content": ""}, None, False)]
    chunks += [_sse_chunk({"content": piece}, None, False) for piece in CONTENT_PIECES]
    chunks.append(_sse_chunk({}, "stop", True))
    if include_usage_chunk:
        chunks.append(_sse_chunk({}, None, True, choices=False))
    done = b"data: [DONE]\n\n"
    chunks.append(f"{len(done):x}\r\n".encode() + done + b"\r\n")
    return head + b"".join(chunks) + b"0\r\n\r\n"


MODELS = _response(
    "200 OK",
    "application/json",
    json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}).encode(),
)
COMPLETION = _chat_completion()
STREAM = _chat_stream(include_usage_chunk=False)
STREAM_WITH_USAGE = _chat_stream(include_usage_chunk=True)
BAD_REQUEST = _response("400 Bad Request", "application/json", b'{"error":{"message":"bad request"}}')


def _dechunk(buf: bytes | bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked request body starting at ``start``; ``None`` until all of it has arrived."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)
            return (bytes(body), end + 4) if end >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        body += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


class FakeOpenAI(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; handles pipelined requests in arrival order."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEADER_BYTES:
                    self._finish(BAD_REQUEST, close=True)
                return
            head = bytes(self.buf[: end + 2])
            close = _CLOSE.search(head) is not None
            if head.startswith(b"GET") or head.startswith(b"HEAD"):
                del self.buf[: end + 4]
                self._finish(MODELS, close)
                continue
            if _CHUNKED.search(head):
                decoded = _dechunk(self.buf, end + 4)
                if decoded is None:
                    return
                body, consumed = decoded
            else:
                match = _CONTENT_LENGTH.search(head)
                length = int(match.group(1)) if match else 0
                consumed = end + 4 + length
                if len(self.buf) < consumed:
                    return
                body = bytes(self.buf[end + 4 : consumed])
            del self.buf[:consumed]
            if _STREAM_TRUE.search(body):
                self._finish(STREAM_WITH_USAGE if b'"include_usage"' in body else STREAM, close)
            else:
                self._finish(COMPLETION, close)

    def _finish(self, response: bytes, close: bool) -> None:
        assert self.transport is not None
        self.transport.write(response)
        if close:
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FakeOpenAI, "127.0.0.1", port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick a free one)")
    args = parser.parse_args()
    try:
        import uvloop  # a project dependency (the router uses it too); plain asyncio works, slower

        runner: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    except ImportError:
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
