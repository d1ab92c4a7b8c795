"""The ASGI app: routes, lifespan (HTTP client, first config, watchers) and error mapping.

``build_app(path)`` is the one place the router's parts are wired together. With ``admin=True`` the admin
routes (``/metrics``, ``/upstreams``) are left out of the app and served by ``state.admin_app`` on a port
of their own (``flotilla router --admin-port``): the API port may be exposed, the admin port never is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import prometheus_client
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flotilla.api.routerconfig import RouterConfig
from flotilla.capturing import pipeline
from flotilla.errors import ConfigError
from flotilla.router import (
    access,
    classifierfetching,
    classifying,
    discovering,
    handling,
    heap,
    httpclient,
    recording,
    reloading,
    serving,
    shadowing,
    snapshots,
    spending,
    tokens,
)
from flotilla.router.classifying import heads
from flotilla.router.metrics import Metrics
from flotilla.router.replies import RequestError, error_body
from flotilla.router.upstreams import Upstreams

log = logging.getLogger(__name__)
JSON = "application/json"


@dataclasses.dataclass(frozen=True)
class CustomHead:
    """A fleet's own classifier head (``classifier.model`` of the config) and the sha256 it was pinned by."""

    head: heads.Head
    sha256: str


@functools.cache
def _packaged_sha256() -> str:
    """sha256 of the head shipped in the package (for ``flotilla_router_classifier_info``)."""
    try:
        return hashlib.sha256(heads.PACKAGED_HEAD.read_bytes()).hexdigest()
    except OSError:
        return ""


class RouterState:
    """Long-lived pieces: upstream pools, metrics, discovery watchers; ``ctx`` once started."""

    def __init__(self, config_path: Path, reload_interval: float) -> None:
        self.config_path = config_path
        self.reload_interval = reload_interval
        self.metrics = Metrics()
        self.ledger = spending.Ledger(spending.replica_id(), self.metrics.key_cloud_spend)
        self.keyring = access.Keyring(self.ledger, self._fetch)
        self.spend_watch: asyncio.Task[None] | None = None
        self.spend_file: str | None = None
        """The spend file ``spend_watch`` polls (``access.spendFile`` of the current config)."""
        self.upstreams = Upstreams(on_removed=self.metrics.forget_breaker)
        self.watchers: dict[tuple[str, str, int, str, str], discovering.SliceWatcher] = {}
        self.ctx: handling.Context | None = None
        self.custom: CustomHead | None = None
        """The fleet's own classifier head in the current snapshot; None: the packaged one."""
        self.shadows = shadowing.Shadows(self.metrics.shadow, spending.replica_id())
        """Mirroring to candidate models (tasks with a shadow; the tasks follow reloads)."""
        self.recorder: recording.Recorder | None = None
        """Distillation capture, built from the first config naming a sink (a new sink needs a restart)."""

    async def _fetch(self, url: str) -> bytes:
        """GET for the keyring's JWKS, on the TLS session (requests are served only once ``ctx`` exists)."""
        if self.ctx is None:
            raise OSError("the router is starting")
        return await tokens.fetch_with(self.ctx.session, url)

    async def apply(self, config: RouterConfig) -> None:
        """Build a snapshot for ``config`` and swap it in; in-flight requests keep the one they started."""
        custom = await self._custom_head(config)
        classifier = await asyncio.to_thread(
            classifying.build_classifier, config, head=custom.head if custom else None
        )
        snapshot = snapshots.build(config, self.upstreams, classifier)
        self.custom = custom
        if custom is not None:
            self.metrics.classifier_in_use("custom", classifier.version, custom.sha256)
        else:
            self.metrics.classifier_in_use("packaged", classifier.version, _packaged_sha256())
        self._sync_watchers(config)
        self.keyring.update(config.access)
        self._sync_spend_watch(config)
        if self.ctx is not None:
            self.ctx.snapshot = snapshot
        else:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300),
                # Bodies are relayed as they come: ask for none compressed, keep no cookies.
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self.ctx = handling.Context(snapshot, session, httpclient.Client(), self.metrics, self.keyring)
            self.ctx.shadows = self.shadows
        await self._sync_capture(config)
        heap.settle()  # freeze the long-lived graph just built, return the build's freed heap

    async def _sync_capture(self, config: RouterConfig) -> None:
        """Start the capture pipeline the first time a config has a sink."""
        assert self.ctx is not None
        if self.recorder is not None:
            if config.capture is None:
                log.warning("capture sink removed from the config: restart the router to stop capturing")
            else:
                self.recorder.pipeline.update(config.capture)
            return
        if config.capture is None:
            return
        try:
            sink = await asyncio.to_thread(pipeline.make_sink, config.capture, dict(os.environ))
        except Exception as exc:  # boto3 missing or refusing its settings: serve without capture
            log.error("trace capture disabled: cannot set up the sink: %s", exc)
            return
        flow = pipeline.Pipeline(
            config.capture, config.fleet, spending.replica_id(), sink, self.metrics.capture
        )
        await flow.start()
        self.recorder = recording.Recorder(flow)
        self.ctx.recorder = self.recorder
        log.info("capturing traces into %s", sink.describe())

    async def _custom_head(self, config: RouterConfig) -> CustomHead | None:
        """The fleet's own head when the config names one and it loads. When it does not: the packaged head
        at start, the head already in use on a reload (one bad file must not change how requests route)."""
        model = config.classifier.model
        if model is None:
            return None
        try:
            head = await classifierfetching.load(model, config)
        except ConfigError as exc:
            self.metrics.classifier_load_failures.inc()
            if self.ctx is None:
                kept = "serving with the packaged classifier"
            elif self.custom is None:
                kept = "keeping the packaged classifier"
            else:
                kept = f"keeping classifier {self.custom.sha256}"
            log.error("custom classifier not loaded, %s: %s", kept, exc)
            return self.custom if self.ctx is not None else None
        log.info(
            "custom classifier %s loaded from %s: tasks %s", model.sha256, model.url, ", ".join(head.classes)
        )
        return CustomHead(head, model.sha256)

    def _sync_spend_watch(self, config: RouterConfig) -> None:
        """Poll the operator's spend file when the config names one (restarted when the path changes)."""
        path = config.access.spend_file if config.access else None
        if path == self.spend_file:
            return
        if self.spend_watch is not None:
            self.spend_watch.cancel()
            self.spend_watch = None
            self.ledger.shared = None
        self.spend_file = path
        if path:
            self.spend_watch = asyncio.create_task(
                spending.watch(Path(path), self.ledger, self.reload_interval)
            )

    def _sync_watchers(self, config: RouterConfig) -> None:
        wanted = {
            (m.service.namespace, m.service.name, m.service.port, m.service.path, m.name): m.service
            for m in config.models
            if m.service is not None
        }
        for key in [k for k in self.watchers if k not in wanted]:
            self.watchers.pop(key).stop()
        loop = asyncio.get_running_loop()
        for key, service in wanted.items():
            if key not in self.watchers:
                pool = self.upstreams.pool(key[4], config.circuit_breaker)
                watcher = discovering.SliceWatcher(service, loop, pool.set_endpoints)
                self.watchers[key] = watcher
                watcher.start()


def _error(exc: RequestError) -> Response:
    return Response(exc.body(), exc.status, media_type=JSON)


def build_app(config_path: Path, reload_interval: float = 1.0, admin: bool = False) -> serving.RouterApp:
    """The router app for the config at ``config_path`` (loaded at startup; a bad file fails startup);
    with ``admin`` the admin routes go to ``app.state.admin_app`` instead (see the module docstring)."""
    state = RouterState(config_path, reload_interval)

    async def starting(request: Request) -> Response:
        """Completions are served by ``serving.RouterApp``; it passes a POST here only before startup."""
        return _error(RequestError(503, "the router is starting", "starting"))

    async def models(request: Request) -> Response:
        """The model list; with access control only for a valid key (as OpenAI's)."""
        assert state.ctx is not None
        if state.keyring.enabled:
            try:
                await state.keyring.identify(request.headers.get("authorization", "").encode("latin-1"))
            except RequestError as exc:
                return Response(exc.body(), exc.status, exc.headers, media_type=JSON)
        return Response(state.ctx.snapshot.models_body, media_type=JSON)

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def readyz(request: Request) -> Response:
        ready = state.ctx is not None
        return Response(
            b'{"status":"ready"}' if ready else b'{"status":"starting"}',
            200 if ready else 503,
            media_type=JSON,
        )

    async def upstreams(request: Request) -> Response:
        """Every pool's endpoints with outstanding counts and breaker states (for operators and tests)."""
        pools = {
            name: {
                "held": pool.held,
                "endpoints": [
                    {"url": e.url, "outstanding": e.outstanding, "breaker": e.breaker.state}
                    for e in pool.endpoints
                ],
            }
            for name, pool in state.upstreams.pools.items()
        }
        return Response(json.dumps({"upstreams": pools}).encode(), media_type=JSON)

    async def metrics(request: Request) -> Response:
        return Response(
            prometheus_client.generate_latest(state.metrics.registry),
            media_type=prometheus_client.CONTENT_TYPE_LATEST,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return Response(
            error_body(status, f"{message}: {request.method} {request.url.path}"), status, media_type=JSON
        )

    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return Response(error_body(500, "internal router error", "internal_error"), 500, media_type=JSON)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        config = await asyncio.to_thread(snapshots.load_config, config_path)
        await state.apply(config)
        watcher = asyncio.create_task(
            reloading.watch(
                config_path,
                state.apply,
                lambda result: state.metrics.reloads.labels(result).inc(),
                reload_interval,
            )
        )
        try:
            yield
        finally:
            watcher.cancel()
            await state.shadows.close()
            if state.recorder is not None:  # after the last request: flush the spool to the store
                await state.recorder.pipeline.close()
            if state.spend_watch is not None:
                state.spend_watch.cancel()
            for slice_watcher in state.watchers.values():
                slice_watcher.stop()
            if state.ctx is not None:
                state.ctx.client.close()
                await state.ctx.session.close()

    routes = [
        Route("/v1/chat/completions", starting, methods=["POST"]),  # 405 for other methods
        Route("/v1/completions", starting, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    admin_routes = [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/upstreams", upstreams, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    handlers = {HTTPException: http_error, Exception: crash}
    app = Starlette(
        routes=routes if admin else routes + admin_routes[:2], lifespan=lifespan, exception_handlers=handlers
    )
    app.state.router = state
    admin_app = Starlette(routes=admin_routes, exception_handlers=handlers) if admin else None
    return serving.RouterApp(app, lambda: state.ctx, state.metrics, admin_app)
