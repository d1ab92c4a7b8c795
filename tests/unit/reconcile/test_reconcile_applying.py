"""The applier's report line (its I/O is exercised on the real cluster by tests/integration)."""

from __future__ import annotations

from typing import Any

from flotilla.reconcile import applying, kube


def test_outcome_describe() -> None:
    listed = applying.Outcome(applied=8, changed=(("v1", "Service", "a"),), pruned=(("v1", "Service", "b"),))
    assert listed.describe() == "1 children changed, 7 unchanged, 1 pruned"
    first = applying.Outcome(applied=8, changed=None, pruned=())
    assert first.describe() == "8 children applied (first generation: nothing to prune)"


def manifest(api_version: str, kind: str, name: str, model: str | None = None, **spec: Any) -> dict[str, Any]:
    labels = {"flotilla.dev/model": model} if model else {}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def test_unserved_optional_kinds_are_dropped_and_reported_per_model() -> None:
    desired = [
        manifest("apps/v1", "Deployment", "f-a", "a"),
        manifest("keda.sh/v1alpha1", "ScaledObject", "f-a", "a"),
        manifest("v1", "Service", "f-a", "a"),
    ]
    kept, unserved = applying.drop_unserved(desired, served=[])
    assert [m["kind"] for m in kept] == ["Deployment", "Service"]
    assert list(unserved) == ["a"]
    assert "KEDA (autoscaling.mode keda) is not installed" in unserved["a"]
    assert "scaledobjects.keda.sh/v1alpha1" in unserved["a"]
    kept, unserved = applying.drop_unserved(desired, served=[kube.SCALED_OBJECT])
    assert (len(kept), unserved) == (3, {})


def test_only_rendered_deployment_replicas_are_split_off() -> None:
    fixed = manifest("apps/v1", "Deployment", "f-a", "a", replicas=2, revisionHistoryLimit=3)
    main, replicas = applying.without_replicas(fixed)
    assert (main["spec"], replicas) == ({"revisionHistoryLimit": 3}, 2)
    assert fixed["spec"]["replicas"] == 2  # not mutated
    autoscaled = manifest("apps/v1", "Deployment", "f-b", "b", revisionHistoryLimit=3)
    assert applying.without_replicas(autoscaled) == (autoscaled, None)
    other = manifest("keda.sh/v1alpha1", "ScaledObject", "f-a", "a", replicas=1)
    assert applying.without_replicas(other) == (other, None)


def test_autoscaled_deployments_carry_the_count_they_are_created_with() -> None:
    autoscaled = manifest("apps/v1", "Deployment", "f-b", "b", revisionHistoryLimit=3)
    assert applying.initial_replicas(autoscaled) is None  # nothing rendered: the Kubernetes default
    autoscaled["metadata"]["annotations"] = {"flotilla.dev/initial-replicas": "0"}
    assert applying.initial_replicas(autoscaled) == 0
    fixed = manifest("apps/v1", "Deployment", "f-a", "a", replicas=2)
    assert applying.initial_replicas(fixed) is None
    other = manifest("v1", "Service", "f-a", "a")
    other["metadata"]["annotations"] = {"flotilla.dev/initial-replicas": "0"}
    assert applying.initial_replicas(other) is None
