"""The operator's reconcile and model-readiness metrics (what the chart's alert rules read)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from flotilla.controller.metrics import OperatorMetrics
from flotilla.reconcile.statuses import DeploymentView


def _view(name: str, component: str, model: str | None, replicas: int, ready: int) -> DeploymentView:
    return DeploymentView(name, component, model, replicas, ready, replicas, 1, 1)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_model_replicas_follow_the_watched_deployments_and_drop_gone_models() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    metrics.observed(
        "ai", "f", [_view("f-coder", "model", "coder", 3, 1), _view("f-router", "router", None, 2, 2)]
    )
    labels = {"namespace": "ai", "fleet": "f", "model": "coder"}
    assert _value(registry, "flotilla_operator_model_replicas", **labels, state="desired") == 3
    assert _value(registry, "flotilla_operator_model_replicas", **labels, state="ready") == 1
    assert _value(registry, "flotilla_operator_model_replicas", namespace="ai", fleet="f", model="",
                  state="ready") is None  # fmt: skip
    metrics.observed("ai", "f", [_view("f-math", "model", "math", 1, 1)])  # coder left the fleet
    assert _value(registry, "flotilla_operator_model_replicas", **labels, state="desired") is None
    assert _value(registry, "flotilla_operator_model_replicas", namespace="ai", fleet="f", model="math",
                  state="ready") == 1  # fmt: skip


def test_reconcile_outcomes_are_counted_and_forgotten_with_the_fleet() -> None:
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    for outcome in ("applied", "applied", "retried"):
        metrics.reconciled("ai", "f", outcome)
    metrics.observed("ai", "f", [_view("f-coder", "model", "coder", 1, 0)])
    total = "flotilla_operator_reconciles_total"
    assert _value(registry, total, namespace="ai", fleet="f", outcome="applied") == 2
    assert _value(registry, total, namespace="ai", fleet="f", outcome="retried") == 1
    metrics.forget("ai", "f")
    assert _value(registry, total, namespace="ai", fleet="f", outcome="applied") is None
    assert _value(registry, "flotilla_operator_model_replicas", namespace="ai", fleet="f", model="coder",
                  state="desired") is None  # fmt: skip
