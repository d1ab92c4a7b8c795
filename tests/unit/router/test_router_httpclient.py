"""The lean upstream client on a real TCP server: keep-alive reuse, chunked streams, timeouts, closing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from flotilla.router.httpclient import Client


class Server:
    """A raw HTTP/1.1 server whose replies the test scripts; counts connections and EOFs seen."""

    def __init__(self) -> None:
        self.connections = 0
        self.eofs = 0
        self.requests: list[bytes] = []
        self.reply: Callable[[asyncio.StreamWriter], object] = _json_reply
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                result = self.reply(writer)
                if asyncio.iscoroutine(result):
                    await result
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eofs += 1
        finally:
            writer.close()


def _json_reply(writer: asyncio.StreamWriter) -> None:
    body = b'{"ok": true}'
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    writer.write(body)


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Server]:
    """Started inside the test's own event loop (an async fixture may run in another one)."""
    srv = Server()
    listener = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    srv.url = f"http://127.0.0.1:{port}"
    yield srv
    listener.close()


async def test_post_reads_body_and_reuses_the_connection() -> None:
    async with serving() as server:
        client = Client()
        for _ in range(3):
            response = await client.post(
                server.url + "/v1/x", b'{"a": 1}', {"content-type": "application/json"}, 5
            )
            assert response.status == 200
            assert response.headers.get("content-type") == "application/json"
            assert await response.read() == b'{"ok": true}'
        assert server.connections == 1
        assert server.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\n")
        assert server.requests[0].endswith(b'\r\n\r\n{"a": 1}')
        client.close()


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    async with serving() as server:
        release = asyncio.Event()

        async def stream(writer: asyncio.StreamWriter) -> None:
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            writer.write(b"7\r\ndata: 1\r\n")
            await writer.drain()
            await release.wait()
            writer.write(b"7\r\ndata: 2\r\n0\r\n\r\n")

        server.reply = stream
        client = Client()
        response = await client.post(server.url + "/s", b"{}", {}, 5)
        assert await response.content.readany() == b"data: 1"
        release.set()
        assert await response.content.readany() == b"data: 2"
        assert await response.content.readany() == b""
        assert client.idle  # a complete keep-alive response goes back to the pool
        client.close()


async def test_close_drops_the_socket_mid_stream() -> None:
    async with serving() as server:

        async def endless(writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()  # then back to reading: the server notices the client's EOF

        server.reply = endless
        client = Client()
        response = await client.post(server.url + "/s", b"{}", {}, 5)
        assert await response.readany() == b"hello"
        response.close()
        for _ in range(50):
            if server.eofs:
                break
            await asyncio.sleep(0.02)
        assert server.eofs == 1  # the upstream saw the request abandoned
        assert not client.idle  # never pooled


async def test_total_timeout_raises_timeout_error() -> None:
    async with serving() as server:

        async def slow(writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
            await asyncio.sleep(30)

        server.reply = slow
        client = Client()
        response = await client.post(server.url + "/s", b"{}", {}, 0.2)
        with pytest.raises(TimeoutError):
            await response.read()


async def test_connect_error_is_an_aiohttp_client_error() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(aiohttp.ClientConnectionError):
        await Client().post(f"http://127.0.0.1:{port}/x", b"{}", {}, 5)


async def test_stale_idle_connection_is_replaced() -> None:
    async with serving() as server:

        def once_then_close(writer: asyncio.StreamWriter) -> None:
            _json_reply(writer)
            writer.close()  # the server drops keep-alive right after answering

        server.reply = once_then_close
        client = Client()
        first = await client.post(server.url + "/x", b"{}", {}, 5)
        assert await first.read() == b'{"ok": true}'
        await asyncio.sleep(0.05)
        second = await client.post(server.url + "/x", b"{}", {}, 5)
        assert await second.read() == b'{"ok": true}'
        assert server.connections == 2


async def test_body_delimited_by_close_and_garbage() -> None:
    async with serving() as server:

        def until_close(writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
            writer.close()

        server.reply = until_close
        client = Client()
        response = await client.post(server.url + "/x", b"{}", {}, 5)
        assert await response.read() == b"all of it"

        def garbage(writer: asyncio.StreamWriter) -> None:
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")

        server.reply = garbage
        with pytest.raises(aiohttp.ClientError):
            await client.post(server.url + "/x", b"{}", {}, 5)
