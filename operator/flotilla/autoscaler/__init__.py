"""The built-in autoscaler: scales `autoscaling.mode: builtin` models on the router's in-flight and queued
requests, to and from zero, without a Prometheus adapter.

    recommending  the arithmetic (pure, fake-clock tested)
    scraping      reading the router pods' /metrics
    discovering   which router pods (EndpointSlices)
    actuating     Kubernetes I/O: replicas (owner-checked), status.autoscaling, Events
    scaling       the loop tying them together: ``run(settings, cluster, stop=...)``

The operator starts it once (see docs/autoscaling.md, "Wiring"):

    cluster = autoscaler.Cluster(kube, settings.field_manager)
    task = asyncio.create_task(autoscaler.run(settings, cluster, stop=stop))
"""

from __future__ import annotations

from flotilla.autoscaler.actuating import Cluster
from flotilla.autoscaler.metrics import AutoscalerMetrics
from flotilla.autoscaler.scaling import Autoscaler, run
from flotilla.autoscaler.settings import AutoscalerSettings, load

__all__ = ["Autoscaler", "AutoscalerMetrics", "AutoscalerSettings", "Cluster", "load", "run"]
