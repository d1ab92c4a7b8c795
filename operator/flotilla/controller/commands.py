"""``flotilla operator``: run the kopf handlers against the cluster in $KUBECONFIG (or in-cluster).

Namespace scoping: ``--namespace NS`` (repeatable) serves only those namespaces; ``--all-namespaces`` (the
default when no namespace is named) serves the whole cluster. The operator runs standalone unless
``--peering NAME`` names a kopf peering object (for an active/standby pair). ``--metrics URL`` serves the
process's Prometheus metrics (the built-in autoscaler's ``flotilla_autoscaler_*`` and ``process_*``); off
unless asked for, so processes started by hand or by tests never compete for a port.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import re
import urllib.parse

from flotilla import errors
from flotilla.controller import configuring
from flotilla.reconcile import kube

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Flags of ``flotilla operator``."""
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", dest="namespaces", action="append", default=[], metavar="NS",
        help="serve fleets in this namespace (repeat for several)",
    )  # fmt: skip
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="serve fleets in every namespace (the default)"
    )
    parser.add_argument(
        "--liveness", metavar="URL",
        help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz (default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics", metavar="URL",
        help="serve Prometheus metrics, e.g. http://0.0.0.0:9090/metrics (default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, help="default INFO"
    )
    parser.add_argument(
        "--peering", metavar="NAME", help="use kopf peering object NAME (default: standalone, one replica)"
    )
    parser.add_argument("--workers", type=int, default=16, help="threads for API calls (default 16)")
    parser.add_argument(
        "--no-autoscaler", dest="autoscaler", action="store_false",
        help="do not run the built-in autoscaler (autoscaling.mode builtin models then keep their replicas; "
        "settings: FLOTILLA_AUTOSCALER_* variables)",
    )  # fmt: skip


def config_from(args: argparse.Namespace) -> configuring.OperatorConfig:
    """Validate the flags into an :class:`OperatorConfig`; bad values are usage errors."""
    namespaces = tuple(dict.fromkeys(args.namespaces))
    for namespace in namespaces:
        if not _DNS_LABEL.fullmatch(namespace):
            raise errors.UsageError(f"--namespace {namespace!r} is not a valid namespace name")
    if args.workers < 1:
        raise errors.UsageError("--workers must be 1 or more")
    if args.liveness and not re.match(r"^https?://[^/]+(/.*)?$", args.liveness):
        raise errors.UsageError(
            f"--liveness {args.liveness!r} must be a URL such as http://0.0.0.0:8080/healthz"
        )
    return configuring.OperatorConfig(
        namespaces=namespaces,
        liveness=args.liveness,
        metrics=_metrics_address(args.metrics),
        log_level=args.log_level,
        peering=args.peering,
        workers=args.workers,
        autoscaler=args.autoscaler,
    )


def _metrics_address(url: str | None) -> tuple[str, int] | None:
    """(host, port) of ``--metrics URL``; the path must be /metrics (prometheus_client answers on any)."""
    if url is None:
        return None
    parsed = urllib.parse.urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "http" or not parsed.hostname or port is None or parsed.path not in ("", "/metrics"):
        raise errors.UsageError(f"--metrics {url!r} must be a URL such as http://0.0.0.0:9090/metrics")
    return parsed.hostname, port


def _serve_metrics(address: tuple[str, int]) -> None:
    """Serve prometheus_client's default registry (autoscaler and process metrics) from a daemon thread."""
    import prometheus_client

    host, port = address
    try:
        prometheus_client.start_http_server(port, addr=host)
    except OSError as exc:  # port taken, address not local: a message, not a traceback
        raise errors.FlotillaError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before any thread starts.

    The API calls run in worker threads (``asyncio.to_thread``), and glibc gives each thread its own arena;
    with many fleets the fragmented arenas, not live objects, are what grows the resident set. Same effect
    as ``MALLOC_ARENA_MAX=2`` in the environment, but it cannot be forgotten in a manifest. No-op off glibc.
    """
    m_arena_max = -8  # from glibc's malloc.h
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, arenas)


def run(name: str, args: argparse.Namespace) -> int:
    """Run the operator until SIGINT/SIGTERM."""
    config = config_from(args)
    _limit_malloc_arenas()
    import kopf  # imported here so `flotilla --help` stays fast

    from flotilla import autoscaler
    from flotilla.controller import contexts, handlers
    from flotilla.reconcile import desiring, kube

    desiring.settings()  # a bad FLOTILLA_* setting is a one-line error now, not a failure per fleet
    desiring.policy()  # the allow-lists too
    scaling = autoscaler.load(namespaces=config.namespaces) if config.autoscaler else None
    configuring.configure_logging(config)
    if config.metrics is not None:
        _serve_metrics(config.metrics)
    try:
        client = kube.Kube.connect(pool_size=config.workers)
    except Exception as exc:  # kubeconfig missing or unreadable: a message, not a traceback
        raise errors.FlotillaError(f"cannot load Kubernetes credentials: {exc}") from None
    _require_crd(client)
    context = contexts.Context(kube=client, config=config, autoscaler=scaling)
    kopf.run(
        registry=handlers.registry,
        settings=configuring.configure(kopf.OperatorSettings(), config),
        standalone=config.peering is None,
        peering_name=config.peering,
        clusterwide=config.clusterwide,
        namespaces=list(config.namespaces),
        liveness_endpoint=config.liveness,
        memo=kopf.Memo(flotilla=context),
    )
    return 0


def _require_crd(client: kube.Kube) -> None:
    """Fail with instructions when the CRD is missing: kopf's scanning is off, so it would not notice it
    appearing later and would serve nothing."""
    from flotilla.api import fleet as fleet_api

    try:
        served = client.serves(fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL)
    except kube.ApiError as exc:
        raise errors.FlotillaError(f"cannot reach the Kubernetes API: {exc}") from None
    if not served:
        raise errors.FlotillaError(
            f"the {fleet_api.KIND} CRD ({fleet_api.PLURAL}.{fleet_api.GROUP}/{fleet_api.VERSION}) is not "
            "installed; install it first: flotilla crds | kubectl apply --server-side -f -"
        )
