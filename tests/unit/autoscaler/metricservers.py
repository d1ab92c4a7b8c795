"""Real HTTP servers for autoscaler tests: each exposes a real router `Metrics` registry through
prometheus-client's own exporter on 127.0.0.1 (port chosen by the OS)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIServer

import prometheus_client

from flotilla.router.metrics import Metrics


class RouterMetricsServer:
    """A router pod's /metrics: set ``metrics.in_flight`` / ``metrics.queued`` gauges, read ``url``."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> RouterMetricsServer:
        self._server, self._thread = prometheus_client.start_http_server(
            0, addr="127.0.0.1", registry=self.metrics.registry
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self

    def set(self, model: str, in_flight: float = 0.0, queued: float = 0.0) -> None:
        self.metrics.in_flight.labels(model).set(in_flight)
        self.metrics.queued.labels(model).set(queued)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Broken(BaseHTTPRequestHandler):
    body = b"oops"
    status = 500

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def broken_server(status: int = 500, body: bytes = b"oops") -> Iterator[str]:
    """A server answering every GET with ``status`` and ``body``; yields its base URL."""
    handler = type("Handler", (_Broken,), {"status": status, "body": body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def router_servers(count: int) -> Iterator[list[RouterMetricsServer]]:
    """``count`` running router metrics servers, stopped afterwards."""
    servers = [RouterMetricsServer().start() for _ in range(count)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def closed_port_url() -> str:
    """A URL nothing listens on (a router pod that just went away)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
