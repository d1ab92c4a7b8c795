"""Fetching a custom classifier by URL and sha256, with real aiohttp against a real HTTP server on loopback:
a good file (cached, so a second fetch needs no server), a wrong digest, an oversized body (declared and
streamed), HTTP errors, a refused connection, a slow server, a damaged cache entry; then the checks a fetched
file must pass (a head at all, this embedding, the fleet's tasks)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "router"))  # headkit

import headkit

from flotilla import errors
from flotilla.api import routerconfig
from flotilla.router import classifierfetching
from flotilla.router.classifying import embedding, heads

CONFIG = routerconfig.RouterConfig.model_validate(
    {"defaultTask": "chat", "tasks": [{"name": "legal"}, {"name": "chat"}]}
)


@dataclasses.dataclass
class Server:
    url: str
    gets: dict[str, int]


@pytest_asyncio.fixture(loop_scope="function")  # the server runs in the test's own event loop
async def server() -> AsyncIterator[Server]:
    """/good.npz (the trained head), /garbage.npz, /missing (404), /broken (500), /slow (2 s), /endless
    (a chunked body with no length)."""
    gets: dict[str, int] = {}

    async def count(request: web.Request) -> None:
        gets[request.path] = gets.get(request.path, 0) + 1

    async def good(request: web.Request) -> web.Response:
        await count(request)
        return web.Response(body=headkit.legal_head_bytes())

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=headkit.GARBAGE)

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=headkit.legal_head_bytes())

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 4096)
        return response

    app = web.Application()
    app.router.add_get("/good.npz", good)
    app.router.add_get("/garbage.npz", garbage)
    app.router.add_get("/broken", broken)
    app.router.add_get("/slow", slow)
    app.router.add_get("/endless", endless)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Server(f"http://127.0.0.1:{port}", gets)
    await runner.cleanup()


async def test_a_good_file_is_fetched_once_then_read_from_the_cache(server: Server, tmp_path: Path) -> None:
    data = await classifierfetching.fetch(
        f"{server.url}/good.npz", headkit.legal_sha256(), cache_dir=tmp_path
    )
    assert data == headkit.legal_head_bytes()
    assert (tmp_path / headkit.legal_sha256()).read_bytes() == data
    again = await classifierfetching.fetch(
        "http://127.0.0.1:9/nowhere", headkit.legal_sha256(), cache_dir=tmp_path
    )
    assert again == data  # a reload (or a resume) with the same digest needs no server at all
    assert server.gets == {"/good.npz": 1}


async def test_a_damaged_cache_entry_is_fetched_again(server: Server, tmp_path: Path) -> None:
    (tmp_path / headkit.legal_sha256()).write_bytes(b"truncated")
    data = await classifierfetching.fetch(
        f"{server.url}/good.npz", headkit.legal_sha256(), cache_dir=tmp_path
    )
    assert data == headkit.legal_head_bytes()
    assert server.gets == {"/good.npz": 1}


async def test_a_file_with_another_sha256_is_refused_and_not_cached(server: Server, tmp_path: Path) -> None:
    pinned = "0" * 64
    with pytest.raises(classifierfetching.FetchError) as caught:
        await classifierfetching.fetch(f"{server.url}/good.npz", pinned, cache_dir=tmp_path)
    assert f"has sha256 {headkit.legal_sha256()}, but the fleet pins {pinned}" in str(caught.value)
    assert not caught.value.retryable
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("path", ["/good.npz", "/endless"], ids=["declared-length", "chunked"])
async def test_a_body_over_the_limit_is_refused(server: Server, tmp_path: Path, path: str) -> None:
    with pytest.raises(classifierfetching.FetchError, match="is larger than 4096 bytes") as caught:
        await classifierfetching.fetch(
            f"{server.url}{path}", headkit.legal_sha256(), cache_dir=tmp_path, max_bytes=4096
        )
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("path", "message"),
    [("/missing", "HTTP 404 Not Found"), ("/broken", "HTTP 500 Internal Server Error")],
)
async def test_http_errors_are_retryable(server: Server, tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(classifierfetching.FetchError, match=message) as caught:
        await classifierfetching.fetch(f"{server.url}{path}", headkit.legal_sha256(), cache_dir=tmp_path)
    assert caught.value.retryable


async def test_a_refused_connection_and_a_slow_server_are_retryable(server: Server, tmp_path: Path) -> None:
    with pytest.raises(classifierfetching.FetchError, match="cannot be fetched") as refused:
        await classifierfetching.fetch("http://127.0.0.1:9/c.npz", headkit.legal_sha256(), cache_dir=tmp_path)
    with pytest.raises(classifierfetching.FetchError, match=r"no complete answer within 0\.3 s") as slow:
        await classifierfetching.fetch(
            f"{server.url}/slow", headkit.legal_sha256(), cache_dir=tmp_path, timeout=0.3
        )
    assert refused.value.retryable and slow.value.retryable


async def test_load_gives_the_checked_head(server: Server, tmp_path: Path) -> None:
    model = routerconfig.ClassifierModel(url=f"{server.url}/good.npz", sha256=headkit.legal_sha256())
    head = await classifierfetching.load(model, CONFIG, cache_dir=tmp_path)
    assert head.classes == ("general", "legal")


async def test_garbage_with_its_own_sha256_is_fetched_but_is_not_a_classifier(
    server: Server, tmp_path: Path
) -> None:
    model = routerconfig.ClassifierModel(
        url=f"{server.url}/garbage.npz", sha256=headkit.sha256(headkit.GARBAGE)
    )
    with pytest.raises(errors.ConfigError, match=r"garbage\.npz is not a valid classifier"):
        await classifierfetching.load(model, CONFIG, cache_dir=tmp_path)


def test_a_head_of_another_embedding_or_without_the_fleets_tasks_is_refused() -> None:
    head = heads.from_bytes(headkit.legal_head_bytes())
    other = dataclasses.replace(head, meta={**head.meta, "embedding": "another-embedding"}).to_bytes()
    embedder = embedding.load()
    with pytest.raises(errors.ConfigError, match="trained on embedding another-embedding"):
        classifierfetching.check(other, "classifier X", ["legal", "chat"], "chat", embedder)
    with pytest.raises(errors.ConfigError, match="do not cover the fleet's task"):
        classifierfetching.check(headkit.legal_head_bytes(), "X", ["legal", "code", "chat"], "chat", embedder)
