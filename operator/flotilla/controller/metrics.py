"""The operator's own reconcile and model-readiness metrics, for the chart's alert rules.

Served with the autoscaler's series on ``--metrics`` (prometheus_client's default registry).
``flotilla_operator_reconciles_total{outcome}`` counts fleet reconciles by how they ended (applied,
rejected: a spec it will not retry, retried: a transient failure, failed: anything else), so an alert can
fire on errors without parsing logs. ``flotilla_operator_model_replicas{state}`` (desired, ready) comes from
the Deployments the operator already watches for status, so "model pods not ready" needs no
kube-state-metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from flotilla.reconcile import statuses

OUTCOMES = ("applied", "rejected", "retried", "failed")


class OperatorMetrics:
    """Reconcile outcomes per fleet, and desired vs ready replicas per model."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = REGISTRY if registry is None else registry
        self.reconciles = Counter(
            "flotilla_operator_reconciles",
            "Fleet reconciles by outcome: applied, rejected (spec refused, not retried), retried "
            "(transient API failure), failed (unexpected error).",
            ["namespace", "fleet", "outcome"],
            registry=r,
        )
        self.replicas = Gauge(
            "flotilla_operator_model_replicas",
            "Replicas of each model's Deployment by state (desired, ready), as last seen by the operator.",
            ["namespace", "fleet", "model", "state"],
            registry=r,
        )
        self._models: dict[tuple[str, str], set[str]] = {}

    def reconciled(self, namespace: str, fleet: str, outcome: str) -> None:
        self.reconciles.labels(namespace, fleet, outcome).inc()

    def observed(self, namespace: str, fleet: str, views: Iterable[statuses.DeploymentView]) -> None:
        """Set the replica gauges of the fleet's model Deployments; drop models no longer seen."""
        seen: set[str] = set()
        for view in views:
            if view.component != "model" or view.model is None:
                continue
            seen.add(view.model)
            self.replicas.labels(namespace, fleet, view.model, "desired").set(view.replicas)
            self.replicas.labels(namespace, fleet, view.model, "ready").set(view.ready)
        for gone in self._models.get((namespace, fleet), set()) - seen:
            self._remove(namespace, fleet, gone)
        self._models[namespace, fleet] = seen

    def forget(self, namespace: str, fleet: str) -> None:
        """Drop a deleted fleet's series."""
        for model in self._models.pop((namespace, fleet), set()):
            self._remove(namespace, fleet, model)
        for outcome in OUTCOMES:
            with contextlib.suppress(KeyError):
                self.reconciles.remove(namespace, fleet, outcome)

    def _remove(self, namespace: str, fleet: str, model: str) -> None:
        for state in ("desired", "ready"):
            with contextlib.suppress(KeyError):
                self.replicas.remove(namespace, fleet, model, state)


_current: OperatorMetrics | None = None


def current() -> OperatorMetrics:
    """The process's one instance on the default registry (created on first use: registering twice fails)."""
    global _current
    if _current is None:
        _current = OperatorMetrics()
    return _current
