"""``flotilla pack-serve --config FILE [--host H] [--port P]``: serve a pack of GGUF models from one process
with Ray Serve (Ray started here, local; no KubeRay). Runs until SIGTERM or SIGINT, then shuts Ray down."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from flotilla.errors import FlotillaError, UsageError


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="pack-serve config file (YAML or JSON)")
    parser.add_argument("--host", default=None, help="address to listen on (default: the config's, 0.0.0.0)")
    parser.add_argument(
        "--port", default=None, type=int, help="port to listen on (default: the config's, 8000)"
    )


def run(name: str, args: argparse.Namespace) -> int:
    """Validate the config and find Ray before starting anything, so mistakes are one-line errors."""
    from flotilla.packserve import config as packconfig

    config = packconfig.load(args.config)
    if args.host is not None:
        config.host = args.host
    if args.port is not None:
        if not 0 < args.port < 65536:
            raise UsageError(f"--port {args.port} is not a port")
        config.port = args.port
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("llama_cpp") is None:
        raise FlotillaError("needs Ray Serve and llama-cpp-python: pip install 'flotilla[ray]'")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a pod

    import ray
    from ray import serve

    from flotilla.packserve import server

    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    started = time.monotonic()
    ray.init(
        address="local",
        num_cpus=sum(m.threads for m in config.models),  # the pack's CPU shares, as Ray resources
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    # after ray.init, which installs handlers of its own that end the process without shutting Ray down
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        serve.start(http_options={"host": config.host, "port": config.port})
        serve.run(server.build(config), name="pack", route_prefix="/", blocking=False)
        print(
            f"flotilla pack-serve: {len(config.models)} models on http://{config.host}:{config.port} "
            f"(ready in {time.monotonic() - started:.1f}s)",
            flush=True,
        )
        stop.wait()
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call,unused-ignore]  # untyped in Ray 2.60
        ray.shutdown()
    return 0
