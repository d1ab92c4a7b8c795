"""The autoscaler's own Prometheus metrics (served by the operator's metrics endpoint)."""

from __future__ import annotations

import contextlib

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

LABELS = ["namespace", "fleet", "model"]


class AutoscalerMetrics:
    """Desired vs actual replicas, load, scale events, time cold and unreadable routers, per model."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = REGISTRY if registry is None else registry
        self.registry = r
        self.desired = Gauge(
            "flotilla_autoscaler_desired_replicas", "Replicas the autoscaler wants.", LABELS, registry=r
        )
        self.actual = Gauge(
            "flotilla_autoscaler_actual_replicas",
            "Replicas the Deployment had at the last decision.",
            LABELS,
            registry=r,
        )
        self.load = Gauge(
            "flotilla_autoscaler_load",
            "In-flight plus queued requests, averaged over the model's window.",
            LABELS,
            registry=r,
        )
        self.scale_events = Counter(
            "flotilla_autoscaler_scale_events",
            "Replica changes made, by direction (up, down).",
            [*LABELS, "direction"],
            registry=r,
        )
        self.cold_seconds = Counter(
            "flotilla_autoscaler_cold_seconds",
            "Time requests were held for a model (cold: no ready replica), between consecutive ticks.",
            LABELS,
            registry=r,
        )
        self.router_errors = Counter(
            "flotilla_autoscaler_router_scrape_errors",
            "Router pods whose /metrics could not be read, per fleet.",
            ["namespace", "fleet"],
            registry=r,
        )

    def forget(self, namespace: str, fleet: str, model: str) -> None:
        """Drop a model's series (it left the fleet or stopped being autoscaled)."""
        for gauge in (self.desired, self.actual, self.load):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, fleet, model)
