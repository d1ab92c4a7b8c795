"""Raw-socket abuse an HTTP client will not send: broken framing, injected and oversized headers, slow and
abandoned bodies, clients that leave mid-stream, pipelined garbage.

Each case is a function ``(host, port) -> list[Outcome]``: the status of every response read (or ``None``
when the server closed the connection without one, which is a fine answer to garbage). Responses produced by
the router app are checked for OpenAI's error shape by the caller; uvicorn answers unparseable HTTP itself
with a plain-text 400 before the app sees it (``protocol`` is True on those).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """One response (``status`` None: the connection closed without one) and whether it came from the app."""

    category: str
    status: int | None
    headers: dict[bytes, bytes]
    body: bytes

    @property
    def from_app(self) -> bool:
        """uvicorn's own answer to unparseable HTTP is plain text; the app always answers JSON or SSE."""
        return self.headers.get(b"content-type", b"").startswith((b"application/json", b"text/event-stream"))


Case = Callable[[str, int], list[Outcome]]
POST = b"POST /v1/chat/completions HTTP/1.1\r\nhost: r\r\n"
BODY = json.dumps({"messages": [{"role": "user", "content": "hello abuse"}], "max_tokens": 4}).encode()
STREAM_BODY = json.dumps(
    {
        "model": "pod",
        "stream": True,
        "messages": [{"role": "user", "content": "long [standin chunk_delay=0.05 chunks=60]"}],
    }
).encode()


def request(body: bytes = BODY, *headers: bytes, path: bytes = b"/v1/chat/completions") -> bytes:
    """A well-formed POST with ``headers`` (raw lines, no CRLF) added."""
    lines = [b"POST " + path + b" HTTP/1.1", b"host: router", b"content-length: %d" % len(body), *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _read_response(sock: socket.socket, buffer: bytearray, category: str) -> Outcome | None:
    """Read one response off ``sock`` (content-length, chunked or until close); None when it closed first."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    status = int(status_line.split()[1])
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = bytearray(rest)
    if b"content-length" in headers:
        size = int(headers[b"content-length"])
        while len(body) < size:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        buffer[:] = body[size:]
        return Outcome(category, status, headers, bytes(body[:size]))
    while True:  # chunked (a stream) or close-delimited: read to the terminating chunk or the close
        if headers.get(b"transfer-encoding") == b"chunked" and body.endswith(b"0\r\n\r\n"):
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    buffer.clear()
    return Outcome(category, status, headers, bytes(body))


def exchange(
    host: str, port: int, category: str, *pieces: bytes, pause: float = 0.0, responses: int = 1
) -> list[Outcome]:
    """Send ``pieces`` (``pause`` seconds apart) on one connection, then read up to ``responses`` answers."""
    outcomes: list[Outcome] = []
    with socket.create_connection((host, port), timeout=10) as sock:
        try:
            for i, piece in enumerate(pieces):
                if i and pause:
                    time.sleep(pause)
                sock.sendall(piece)
            buffer = bytearray()
            for _ in range(responses):
                outcome = _read_response(sock, buffer, category)
                if outcome is None:
                    outcomes.append(Outcome(category, None, {}, b""))
                    break
                outcomes.append(outcome)
        except (ConnectionResetError, BrokenPipeError):
            outcomes.append(Outcome(category, None, {}, b""))
    return outcomes


def _send_and_leave(host: str, port: int, category: str, data: bytes) -> list[Outcome]:
    """Send ``data`` and close without reading: a client that leaves mid-body."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(data)
    return [Outcome(category, None, {}, b"")]


def _leave_mid_stream(host: str, port: int) -> list[Outcome]:
    """Read the head and the first events of a slow stream, then hang up."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request(STREAM_BODY))
        data = b""
        while data.count(b"data:") < 2:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    return [Outcome("mid-stream-close", status, {b"content-type": b"text/event-stream"}, b"")]


def cases() -> list[Case]:
    """One list of raw cases (about 60 requests); the suite runs it several times."""
    inj = "header-injection"
    big = "huge-headers"
    frame = "framing"
    garbage = "pipelined-garbage"
    task = b"x-flotilla-task: "
    raw: list[tuple[str, tuple[bytes, ...], int]] = [
        # CRLF makes a second header, never a response header; bare CR / LF / NUL are refused by the parser.
        (inj, (request(BODY, task + b"chat\r\nx-injected: 1"),), 1),
        (inj, (request(BODY, task + b"chat\rx-injected: 1"),), 1),
        (inj, (request(BODY, task + b"chat\nx-injected: 1"),), 1),
        (inj, (request(BODY, task + b"chat\x00evil"),), 1),
        (inj, (request(BODY, task + b"\x01\x7f\x1b[31m"),), 1),
        (inj, (request(BODY, task + b"chat\r\n code"),), 1),  # obsolete line folding
        (inj, (request(BODY, task + "café ✓".encode()),), 1),
        (inj, (request(BODY, task + b"\xff\xfe\x80"),), 1),
        (inj, (request(BODY, task + b"chat", task + b"code"),), 1),
        (inj, (request(BODY, task + b"x" * 8000),), 1),
        (inj, (request(BODY, b"x-flotilla-model: ../../etc", b"x-flotilla-route-reason: \xff"),), 1),
        (inj, (request(BODY, b"x-flotilla-task : chat"),), 1),
        (inj, (request(BODY, b"x-flotilla-task\t: chat"),), 1),
        (inj, (request(BODY, b"X-FLOTILLA-TASK: CODE"),), 1),
        (big, (request(BODY, task + b"y" * 70_000),), 1),
        (big, (request(BODY, task + b"z" * 1_100_000),), 1),
        (big, (request(BODY, *(b"x-flotilla-h%d: %s" % (i, b"v" * 100) for i in range(1000))),), 1),
        (big, (request(BODY, path=b"/v1/chat/completions?" + b"q" * 100_000),), 1),
        (big, (b"POST /" + b"a" * 200_000 + b" HTTP/1.1\r\nhost: r\r\n\r\n",), 1),
        # Framing: missing, wrong, duplicated or contradictory lengths; bad chunked encodings.
        (frame, (POST + b"\r\n" + BODY,), 2),
        (frame, (POST + b"content-length: 5\r\n\r\n" + BODY,), 2),
        (frame, (POST + b"content-length: abc\r\n\r\n" + BODY,), 1),
        (frame, (POST + b"content-length: -1\r\n\r\n" + BODY,), 1),
        (
            frame,
            (POST + b"content-length: 1" + b"0" * 30 + b"\r\n\r\n",),
            1,
        ),
        (frame, (request(BODY, b"content-length: 3"),), 1),
        (frame, (request(BODY, b"transfer-encoding: chunked"),), 1),
        (
            frame,
            (POST + b"transfer-encoding: gzip\r\n\r\n" + BODY,),
            1,
        ),
        (
            frame,
            (POST + b"transfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",),
            1,
        ),
        (
            frame,
            (POST + b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n",),
            1,
        ),
        (frame, (b"POST /v1/chat/completions HTTP/1.0\r\ncontent-length: %d\r\n\r\n" % len(BODY) + BODY,), 1),
        (
            frame,
            (
                b"POST http://elsewhere.example/v1/chat/completions HTTP/1.1\r\nhost: r\r\n"
                + b"content-length: %d\r\n\r\n" % len(BODY)
                + BODY,
            ),
            1,
        ),
        # Pipelining: good requests back to back, then garbage after a good one.
        (garbage, (request() + request() + request(),), 3),
        (garbage, (request() + b"\x00\xff\xfe garbage \r\n\r\n",), 2),
        (garbage, (request() + b"GET /v1/models HTTP/9.9\r\n\r\n",), 2),
        (garbage, (b"BREW /v1/chat/completions HTTP/1.1\r\nhost: r\r\n\r\n",), 1),
        (garbage, (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),), 1),
        (
            garbage,
            (b"POST /v1/chat/completions%00/../x HTTP/1.1\r\nhost: r\r\ncontent-length: 2\r\n\r\n{}",),
            1,
        ),
        (garbage, (b"GET /metrics HTTP/1.1\r\nhost: r\r\n\r\n" + request(b"{" * 3000),), 2),
    ]
    out: list[Case] = [
        (lambda host, port, c=category, p=pieces, n=n: exchange(host, port, c, *p, responses=n))
        for category, pieces, n in raw
    ]
    chunked = POST + b"transfer-encoding: chunked\r\n\r\n"
    slow = [chunked] + [
        b"%x\r\n%s\r\n" % (len(BODY[i : i + 8]), BODY[i : i + 8]) for i in range(0, len(BODY), 8)
    ]
    slow.append(b"0\r\n\r\n")
    out += [
        lambda host, port: exchange(host, port, "slow-body", *slow, pause=0.01),
        lambda host, port: exchange(
            host,
            port,
            "slow-body",
            *(request()[i : i + 40] for i in range(0, 200, 40)),
            request()[200:],
            pause=0.02,
        ),
        lambda host, port: _send_and_leave(
            host, port, "mid-body-close", request(BODY)[: len(request(BODY)) - 20]
        ),
        lambda host, port: _send_and_leave(host, port, "mid-body-close", chunked + b'10\r\n{"messages"'),
        lambda host, port: _send_and_leave(host, port, "mid-body-close", request(STREAM_BODY)),
        _leave_mid_stream,
    ]
    return out
