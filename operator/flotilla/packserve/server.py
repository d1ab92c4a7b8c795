"""The Ray Serve application: an ingress deployment routing ``/<model>/v1/...`` to one deployment per model.

Ray is started inside the process (``ray.init`` local, no KubeRay). Each model deployment holds one
``Engine`` and takes one request at a time (llama.cpp's context is not shared between threads, and its
server serialises requests the same way); its Ray ``num_cpus`` is its thread count, the plan's CPU share.
The ingress owns the pack's ``Residency`` (which models are loaded), answers ``/v1/models`` and turns
every failure into an OpenAI error body.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from flotilla.packserve import config as packconfig
from flotilla.packserve.config import PackModel, PackServeConfig
from flotilla.packserve.engine import Engine
from flotilla.packserve.requests import BadRequest, Kind, error_body, parse
from flotilla.packserve.residency import Residency

ROUTES: dict[str, Kind] = {"v1/chat/completions": "chat", "v1/completions": "completions"}
MAX_BODY = 4 * 1024 * 1024


def _error(
    status: int, message: str, kind: str = "invalid_request_error", param: str | None = None
) -> Response:
    return JSONResponse(error_body(message, kind, param), status_code=status)


class ModelServer:
    """One model: answers whole responses or streams of chunks; a client mistake comes back as a dict."""

    def __init__(self, spec: PackModel, load_now: bool) -> None:
        self.engine = Engine(spec)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{spec.name}")
        if load_now:
            self.engine.load()

    def load(self) -> None:
        self.engine.load()

    def unload(self) -> None:
        self.engine.unload()

    def answer(self, kind: Kind, kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            result: dict[str, Any] = self.engine.answer(kind, kwargs)
        except ValueError as exc:
            return {"__error__": str(exc)}
        return result

    async def stream(self, kind: Kind, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Chunks pulled one at a time on the replica's one llama thread, so that a client going away (Serve
        cancels this coroutine) closes the generation at its next token instead of letting it run on."""
        loop = asyncio.get_running_loop()
        chunks = self.engine.stream(kind, kwargs)
        try:
            while (chunk := await loop.run_in_executor(self.thread, next, chunks, None)) is not None:
                yield chunk
        except ValueError as exc:
            yield {"__error__": str(exc)}
        finally:  # queued behind a next() still running, on the same thread: never "already executing"
            await asyncio.shield(loop.run_in_executor(self.thread, chunks.close))


class Ingress:
    """Routes by the path's first segment; holds a request for an unloaded model until it is loaded."""

    def __init__(self, config: PackServeConfig, **handles: Any) -> None:
        self.config = config
        self.handles = handles
        resident = [m.name for m in config.models[: config.resident]]
        self.residency = Residency(resident, config.resident, self._load, self._unload)
        self.created = int(time.time())

    async def _load(self, name: str) -> None:
        await self.handles[name].load.remote()

    async def _unload(self, name: str) -> None:
        await self.handles[name].unload.remote()

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except Exception as exc:  # an engine or Ray failure: still an OpenAI error, never a traceback
            return _error(503, f"the model server failed: {type(exc).__name__}: {exc}", "server_error")

    async def _handle(self, request: Request) -> Response:
        path = request.url.path.strip("/")
        if path == "v1/models":
            return JSONResponse(self._models())
        if path == "healthz":
            return JSONResponse({"status": "ok", "loaded": self.residency.loaded})
        name, _, rest = path.partition("/")
        if name not in self.handles:
            return _error(
                404, f"no model named {name!r} in this pack (GET /v1/models lists them)", param="model"
            )
        if rest == "v1/models":
            return JSONResponse(self._models([name]))
        kind = ROUTES.get(rest)
        if kind is None:
            return _error(404, f"unknown route /{path}")
        if request.method != "POST":
            return _error(405, f"/{path} takes POST")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, f"the request body is larger than {MAX_BODY} bytes")
        try:
            kwargs = parse(body, kind)
        except BadRequest as exc:
            return _error(400, str(exc), param=exc.param)
        if kwargs.pop("stream", False):
            return await self._stream(name, kind, kwargs)
        async with self.residency.using(name):
            result: dict[str, Any] = await self.handles[name].answer.remote(kind, kwargs)
        if "__error__" in result:
            return _error(400, result["__error__"])
        return JSONResponse(result)

    async def _stream(self, name: str, kind: Kind, kwargs: dict[str, Any]) -> Response:
        using = self.residency.using(name)
        await using.__aenter__()
        try:
            chunks = self.handles[name].options(stream=True).stream.remote(kind, kwargs)
            first: dict[str, Any] = await chunks.__anext__()
        except BaseException:
            await using.__aexit__(None, None, None)
            raise
        if "__error__" in first:
            await using.__aexit__(None, None, None)
            return _error(400, first["__error__"])

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b"data: " + json.dumps(first).encode() + b"\n\n"
                async for chunk in chunks:
                    if "__error__" in chunk:
                        yield b"data: " + json.dumps(error_body(chunk["__error__"])).encode() + b"\n\n"
                        return
                    yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
            finally:
                await using.__aexit__(None, None, None)

        return StreamingResponse(events(), media_type="text/event-stream")

    def _models(self, names: list[str] | None = None) -> dict[str, Any]:
        loaded = set(self.residency.loaded)
        return {
            "object": "list",
            "data": [
                {
                    "id": m.name,
                    "object": "model",
                    "created": self.created,
                    "owned_by": "flotilla-pack",
                    "loaded": m.name in loaded,
                }
                for m in self.config.models
                if names is None or m.name in names
            ],
        }


def build(config: PackServeConfig) -> Any:
    """The bound application: one ``ModelServer`` deployment per model behind the ``Ingress``."""
    resident = {m.name for m in config.models[: config.resident]}
    model_server: Any = serve.deployment(max_ongoing_requests=1)(ModelServer)
    ingress: Any = serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})(Ingress)
    handles = {
        m.name: model_server.options(name=f"model-{m.name}", ray_actor_options={"num_cpus": m.threads}).bind(
            m, m.name in resident
        )
        for m in config.models
    }
    return ingress.bind(config, **handles)


def app(args: dict[str, Any]) -> Any:
    """Application builder named by a RayService's serveConfigV2 (``import_path:
    flotilla.packserve.server:app``, render/rayservice.py): Serve calls it with the application's ``args``,
    a pack-serve config (host and port are the cluster's http_options there, not read)."""
    return build(packconfig.validate(args, "serveConfigV2 args"))
