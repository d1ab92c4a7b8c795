"""Autoscaler settings: how often it ticks and how it reads the routers, read from env in `load()`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from flotilla import errors

_FLOAT_ENV = {
    "FLOTILLA_AUTOSCALER_INTERVAL": "interval",
    "FLOTILLA_AUTOSCALER_SCRAPE_TIMEOUT": "scrape_timeout",
    "FLOTILLA_AUTOSCALER_STATUS_PERIOD": "status_period",
}


@dataclasses.dataclass(frozen=True)
class AutoscalerSettings:
    """Everything the built-in autoscaler needs besides the fleets themselves."""

    interval: float = 5.0
    """Seconds between ticks (one scrape of every router pod and one decision per model)."""
    scrape_timeout: float = 2.0
    """Seconds one router pod may take to serve /metrics before it is skipped for the tick."""
    status_period: float = 15.0
    """At most one fleet status write per this many seconds, unless replicas changed."""
    metrics_path: str = "/metrics"
    """Path of the router's Prometheus endpoint."""
    field_manager: str = "flotilla-autoscaler"
    """Field manager of the scale patches and of status.autoscaling (the reconciler's is `flotilla`)."""
    namespaces: tuple[str, ...] = ()
    """Namespaces whose fleets are autoscaled; empty: all."""
    host_aliases: tuple[tuple[str, str], ...] = ()
    """(endpoint host, address to connect to) pairs, like curl's ``--resolve``: for an operator running
    outside the pod network (development, tests) where an EndpointSlice names a host it cannot reach or
    resolve. Empty in a cluster."""


def load(environ: Mapping[str, str] | None = None, namespaces: tuple[str, ...] = ()) -> AutoscalerSettings:
    """Settings from FLOTILLA_AUTOSCALER_* variables; a bad number is a UsageError naming the variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var, attr in _FLOAT_ENV.items():
        if not env.get(var):
            continue
        try:
            values[attr] = float(env[var])
        except ValueError:
            raise errors.UsageError(f"{var} must be a number of seconds, not {env[var]!r}") from None
        if values[attr] <= 0:
            raise errors.UsageError(f"{var} must be more than 0 seconds, not {env[var]!r}")
    aliases = env.get("FLOTILLA_AUTOSCALER_HOST_ALIASES", "")
    values["host_aliases"] = tuple(_alias(item) for item in aliases.split(",") if item.strip())
    return dataclasses.replace(AutoscalerSettings(namespaces=namespaces), **values)


def _alias(item: str) -> tuple[str, str]:
    host, _, address = item.strip().partition("=")
    if not host or not address:
        raise errors.UsageError(
            f"FLOTILLA_AUTOSCALER_HOST_ALIASES entries must look like host=address, not {item.strip()!r}"
        )
    return host, address
