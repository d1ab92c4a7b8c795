"""A lean keep-alive HTTP/1.1 client for plain-``http://`` upstreams (fleet pods), on ``asyncio.Protocol``.

Hand-written rather than aiohttp because on a 5-token completion aiohttp's ``ClientSession._request``
(header objects, auto headers, tracing hooks, cookie handling, ``ClientRequest``/``ClientResponse``
machinery) was over a third of the router's CPU — more than Flotilla's own logic (see "Where Flotilla's
time goes" in ``docs/benchmarks-router.md``). This client does only what the router needs: POST a pre-built
body, one pool of idle connections per host, the response parsed by ``httptools`` (which also decodes
chunked bodies), body read whole or chunk by chunk, a total timeout, and the socket dropped when the caller
closes the response early (so the model server sees the request abandoned). TLS upstreams (cloud providers)
stay on aiohttp. Failures raise aiohttp's exception classes, so callers handle both clients alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import cast

import aiohttp
import httptools

_HIGH_WATER = 256 * 1024  # pause reading the upstream when this much body is waiting for the client


class _Connection(asyncio.Protocol):
    """One TCP connection; holds the state of the one response being read on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._paused = False
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.error: BaseException | None = None
        self.head: asyncio.Future[None] | None = None
        self.waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(aiohttp.ClientPayloadError(f"malformed upstream response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete:
            return
        if self.status and "content-length" not in self.headers and "transfer-encoding" not in self.headers:
            self.on_message_complete()  # a body delimited by the server closing the connection
            self.keep_alive = False
        else:
            self.fail(aiohttp.ServerDisconnectedError())

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # helpers
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: BaseException) -> None:
        """Record ``error`` for the reader and drop the socket."""
        if self.error is None:
            self.error = error
        for future in (self.head, self.waiter):
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: the reader may already be gone
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def took(self) -> bytes:
        """The body bytes buffered so far (resuming a paused socket)."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data


class Response:
    """The parts of ``aiohttp.ClientResponse`` the router uses: status, headers, read, content.readany."""

    __slots__ = ("_client", "_conn", "_key", "_timer", "headers", "status")

    def __init__(self, client: Client, key: str, conn: _Connection, timer: asyncio.TimerHandle) -> None:
        self._client = client
        self._key = key
        self._conn: _Connection | None = conn
        self._timer = timer
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers

    @property
    def content(self) -> Response:
        return self

    async def readany(self) -> bytes:
        """The next body bytes; b"" once the body is complete."""
        conn = self._conn
        if conn is None:
            return b""
        while not conn.chunks:
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                self.release()
                return b""
            conn.waiter = conn._loop.create_future()
            try:
                await conn.waiter
            finally:
                conn.waiter = None
        return conn.took()

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool afterwards."""
        parts: list[bytes] = []
        while chunk := await self.readany():
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        """Return a fully read connection to the pool (anything else is closed)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._timer.cancel()
        if conn.complete and conn.keep_alive and conn.error is None and not conn.closed:
            conn.reset()
            self._client.idle.setdefault(self._key, []).append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Drop the connection (not back to the pool): the upstream sees the request abandoned."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._timer.cancel()
            conn.close()


class Client:
    """Idle keep-alive connections per ``host:port``; ``post`` returns once the response headers arrived."""

    def __init__(self) -> None:
        self.idle: dict[str, list[_Connection]] = {}

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], total_timeout: float) -> Response:
        """POST ``body`` to ``url`` (``http://host[:port]/path``); TimeoutError after ``total_timeout``."""
        key, _, path = url[7:].partition("/")
        loop = asyncio.get_running_loop()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = f"POST /{path} HTTP/1.1\r\nhost: {key}\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
        message = head.encode("latin-1") + body
        idle = self.idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                try:
                    return await self._send(conn, key, message, loop, total_timeout)
                except aiohttp.ServerDisconnectedError:
                    if conn.got_bytes:
                        raise
                    # The server closed this idle connection as we reused it: try a fresh one.
        conn = await self._connect(key, loop)
        return await self._send(conn, key, message, loop, total_timeout)

    async def _connect(self, key: str, loop: asyncio.AbstractEventLoop) -> _Connection:
        host, port = _host_port(key)
        try:
            _, conn = await loop.create_connection(lambda: _Connection(loop), host, port)
        except OSError as exc:
            raise aiohttp.ClientConnectionError(f"cannot connect to {key}: {exc}") from None
        return conn

    async def _send(
        self, conn: _Connection, key: str, message: bytes, loop: asyncio.AbstractEventLoop, total: float
    ) -> Response:
        assert conn.transport is not None
        conn.head = head = loop.create_future()
        timer = loop.call_later(total, conn.fail, TimeoutError())
        try:
            conn.transport.write(message)
            await head
        except BaseException:
            timer.cancel()
            conn.close()
            raise
        conn.head = None
        return Response(self, key, conn, timer)

    def close(self) -> None:
        """Close every idle connection."""
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()


def _host_port(key: str) -> tuple[str, int]:
    if key.startswith("["):  # [v6]:port
        host, _, rest = key[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 80
    host, _, port = key.partition(":")
    return host, int(port) if port else 80
