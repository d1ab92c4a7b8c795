"""``flotilla router --config FILE [--host 127.0.0.1] [--port 8080]``: run the fleet router with uvicorn."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
from pathlib import Path

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
    uvicorn.run(
        app.build_app(args.config, args.reload_interval),
        host=args.host,
        port=args.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        access_log=args.access_log,
        proxy_headers=args.access_log,  # X-Forwarded-For only matters to the access log (~5% CPU/request)
        log_level=args.log_level,
        timeout_graceful_shutdown=30,
    )
    return 0
