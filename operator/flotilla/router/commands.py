"""``flotilla router --config FILE [--host 127.0.0.1] [--port 8080] [--admin-port 9090]``: run the fleet
router with uvicorn (a second server on the admin port when one is given)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from flotilla.errors import UsageError

# The classifier's matrix products are tiny (one prompt at a time): a BLAS thread pool only adds hand-off
# and spinning threads that compete with the event loop for the router's core. Set before numpy loads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="RouterConfig file (YAML or JSON)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", default=8080, type=int, help="port to listen on (default 8080)")
    parser.add_argument(
        "--admin-port",
        type=int,
        default=None,
        help="serve /metrics and /upstreams on this port only (default: on --port, for local use)",
    )
    parser.add_argument(
        "--reload-interval", default=1.0, type=float, help="seconds between config file checks (default 1)"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request line (off by default)")


def run(name: str, args: argparse.Namespace) -> int:
    """Validate the config before binding, so a bad file is a one-line error (exit 2), not a traceback."""
    import prometheus_client
    import uvicorn

    from flotilla.errors import ConfigError
    from flotilla.router import app, snapshots

    try:
        snapshots.load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # halves /metrics
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    router = app.build_app(args.config, args.reload_interval, admin=args.admin_port is not None)
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    main = uvicorn.Config(
        router,
        host=args.host,
        port=args.port,
        loop=loop,
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        access_log=args.access_log,
        proxy_headers=args.access_log,  # X-Forwarded-For only matters to the access log (~5% CPU/request)
        log_level=args.log_level,
        timeout_graceful_shutdown=30,
    )
    if args.admin_port is None:
        uvicorn.Server(main).run()
        return 0
    assert router.admin is not None  # built with admin=True
    admin = uvicorn.Config(
        router.admin,
        host=args.host,
        port=args.admin_port,
        loop=loop,
        lifespan="off",
        access_log=False,
        log_level=args.log_level,
    )
    with asyncio.Runner(loop_factory=main.get_loop_factory()) as runner:
        runner.run(_serve_both(uvicorn.Server(main), uvicorn.Server(admin)))
    return 0


async def _serve_both(main: object, admin: object) -> None:
    """Run the API and admin servers; when one stops (a signal reaches one of them), stop the other."""
    servers: list[Any] = [main, admin]
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*pending)
