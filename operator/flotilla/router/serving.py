"""Serve the two completion routes as a bare ASGI callable, in front of the Starlette app for the rest.

Why not a Starlette route: on a 5-token reply the middleware stack, ``Request``, ``Response`` and the anyio
task group behind ``StreamingResponse`` cost about as much CPU as Flotilla's own work (see "Where Flotilla's
time goes" in ``docs/benchmarks-router.md``). Here a request is read from ``receive`` and answered with one
``http.response.start`` and direct ``http.response.body`` messages. While the answer is awaited (plain or the
first event of a stream) and while a stream is relayed, a small watcher task listens for ``http.disconnect``
and cancels the work when it comes, so the upstream connection is closed and the model stops generating.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from flotilla.router import access, handling, requesting
from flotilla.router.metrics import Metrics
from flotilla.router.relaying import Stream
from flotilla.router.replies import Plain, RequestError, error_body

log = logging.getLogger(__name__)

ROUTES: dict[str, requesting.Kind] = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}
ROUTES_BY_KIND: dict[requesting.Kind, str] = {kind: path for path, kind in ROUTES.items()}
_TASK = handling.TASK_HEADER.encode()
_AUTHORIZATION = b"authorization"
_JSON = b"application/json"
_SSE = b"text/event-stream; charset=utf-8"


class RouterApp:
    """POSTs to the completion routes go to ``serve``; everything else (and lifespan) to ``fallback``."""

    def __init__(
        self,
        fallback: ASGIApp,
        context: Callable[[], handling.Context | None],
        metrics: Metrics,
        admin: ASGIApp | None = None,
    ) -> None:
        self.fallback = fallback
        self._context = context
        self._metrics = metrics
        self.admin = admin
        """The admin routes' app when they have a port of their own (``flotilla router --admin-port``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            kind = ROUTES.get(scope["path"])
            ctx = self._context()
            if kind is not None and ctx is not None:
                await serve(ctx, self._metrics, kind, scope, receive, send)
                return
        await self.fallback(scope, receive, send)


async def serve(
    ctx: handling.Context, metrics: Metrics, kind: requesting.Kind, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer one completion request; every error becomes an OpenAI error body.

    With access control the key is checked first (before the body is read), and its grant is held until
    the whole response has been sent: that is what its concurrency limit counts.
    """
    grant: access.Grant | None = None
    try:
        task, declared, authorization = _headers(scope)
        if ctx.keyring.enabled:
            grant = await ctx.keyring.admit(authorization, time.monotonic())
        await _answer(ctx, metrics, kind, scope, receive, send, task, declared, grant)
    except RequestError as exc:
        metrics.requests.labels("none", "none", "rejected").inc()
        await _send_plain(send, Plain(exc.status, exc.body(), exc.headers), _JSON)
    finally:
        if grant is not None:
            grant.close(time.monotonic())


async def _answer(
    ctx: handling.Context,
    metrics: Metrics,
    kind: requesting.Kind,
    scope: Scope,
    receive: Receive,
    send: Send,
    task: str | None,
    declared: int | None,
    grant: access.Grant | None,
) -> None:
    try:
        body = await read_body(receive, declared, ctx.snapshot.config.max_body_bytes)
        if body is None:
            return  # the client left before sending its body
        reply = await _complete_unless_gone(ctx, kind, body, task, receive, grant)
        if reply is None:
            return  # the client left before the answer; the upstream request was closed
    except RequestError as exc:
        if exc.status < 500:
            metrics.requests.labels("none", "none", "rejected").inc()
        await _send_plain(send, Plain(exc.status, exc.body(), exc.headers), _JSON)
        return
    except Exception:
        log.exception("unhandled error on %s", scope["path"])
        body = error_body(500, "internal router error", "internal_error")
        await _send_plain(send, Plain(500, body, {}), _JSON)
        return
    if isinstance(reply, Plain):
        if reply.capture is not None:
            reply.capture.plain(reply)
        content_type = reply.content_type
        if content_type.startswith("text/") and "charset=" not in content_type:
            content_type += "; charset=utf-8"  # as Starlette's Response did for relayed 4xx bodies
        await _send_plain(send, reply, content_type.encode("latin-1"))
        if reply.shadow is not None:  # after the client has the whole answer
            reply.shadow.plain(reply)
    else:
        await _send_stream(reply, receive, send)


async def _complete_unless_gone(
    ctx: handling.Context,
    kind: requesting.Kind,
    body: bytes,
    task: str | None,
    receive: Receive,
    grant: access.Grant | None,
) -> Plain | Stream | None:
    """``handling.complete``, cancelled when the client disconnects first (None then).

    A plain answer's headers come only when the model has generated all of it, so without this a client
    that gave up would keep the model generating (and its slot taken) to the end. Cancelling closes the
    upstream connection (``forwarding.open_response``), which is how a model server learns to stop.
    """
    watch = _DisconnectWatch(receive)
    try:
        return await handling.complete(ctx, kind, body, task, grant)
    except asyncio.CancelledError:
        if not watch.client_left():
            raise  # cancelled from elsewhere (shutdown), not by the client leaving
        log.info("client went away before the answer on %s; upstream request closed", ROUTES_BY_KIND[kind])
        return None
    finally:
        watch.close()


class _DisconnectWatch:
    """Cancels the current task when the client disconnects, while ``armed``.

    Written by hand because ASGI reports a disconnect only as a message on ``receive``, while the work to
    stop (waiting for an upstream's answer, relaying a stream) is the current task itself.
    """

    __slots__ = ("_task", "_watcher", "armed")

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None  # always called from a request's task
        self._task = task
        self.armed = True
        self._watcher = asyncio.ensure_future(self._watch(receive))
        self._watcher.add_done_callback(self._gone)

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    def _gone(self, _: object) -> None:
        if self.armed:
            self._task.cancel()

    def client_left(self) -> bool:
        """After a ``CancelledError``: True (and the task uncancelled) when the client's leaving caused it."""
        if not (self._watcher.done() and not self._watcher.cancelled()):
            return False
        self._task.uncancel()
        return True

    def close(self) -> None:
        self.armed = False
        self._watcher.remove_done_callback(self._gone)
        self._watcher.cancel()


def _headers(scope: Scope) -> tuple[str | None, int | None, bytes | None]:
    """The task header, the declared content length and the Authorization value (one pass over the raw
    header list)."""
    task: str | None = None
    declared: int | None = None
    authorization: bytes | None = None
    for name, value in scope["headers"]:
        if name == _TASK:
            task = value.decode("latin-1")
        elif name == b"content-length" and value.isdigit():
            declared = int(value)
        elif name == _AUTHORIZATION:
            authorization = value
    return task, declared, authorization


async def read_body(receive: Receive, declared: int | None, limit: int) -> bytes | None:
    """The request body, refusing (413) anything over ``limit`` without reading it all; None on disconnect."""
    if declared is not None and declared > limit:
        raise RequestError(413, f"request body is larger than the {limit}-byte limit", "request_too_large")
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit:
        return body  # the usual case: the whole body in one message
    parts = [body]
    size = len(body)
    while True:
        if size > limit:
            raise RequestError(
                413, f"request body is larger than the {limit}-byte limit", "request_too_large"
            )
        if not message.get("more_body", False):
            return b"".join(parts)
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        part = message.get("body", b"")
        size += len(part)
        parts.append(part)


def _raw_headers(headers: dict[str, str], content_type: bytes) -> list[tuple[bytes, bytes]]:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-type", content_type))
    return raw


async def _send_plain(send: Send, reply: Plain, content_type: bytes) -> None:
    headers = _raw_headers(reply.headers, content_type)
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


async def _send_stream(reply: Stream, receive: Receive, send: Send) -> None:
    """Relay ``reply``'s chunks; a client disconnect cancels the relay (and so closes the upstream)."""
    watch = _DisconnectWatch(receive)
    sent: list[bytes] | None = None if reply.capture is None and reply.shadow is None else []
    try:
        headers = _raw_headers(reply.headers, _SSE)
        headers.append((b"cache-control", b"no-cache"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in reply.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if sent is not None:
                sent.append(chunk)
        watch.armed = False
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if reply.capture is not None and sent is not None:
            reply.capture.stream(reply, sent)
        if reply.shadow is not None and sent is not None:
            reply.shadow.stream(reply, sent)
    except asyncio.CancelledError:
        if not watch.client_left():
            raise  # cancelled from elsewhere (shutdown), not by the client leaving
    except Exception:
        log.exception("stream relay failed")
    finally:
        watch.close()
        await reply.finish()
