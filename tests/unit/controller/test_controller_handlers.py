"""The handler registry: what the operator watches, and that it never needs a finalizer."""

from __future__ import annotations

import kopf

from flotilla.controller import contexts, handlers, handling
from flotilla.reconcile import kube


def _selectors(handlers_: list[kopf.BaseHandler]) -> set[tuple[str | None, str | None, str | None]]:
    return {(h.selector.group, h.selector.version, h.selector.any_name) for h in handlers_}  # type: ignore[attr-defined]


def test_fleet_handlers_reconcile_on_create_update_resume_and_never_on_delete() -> None:
    changing = handlers.registry._changing.get_all_handlers()
    reasons = {h.reason.value if h.reason else "resume" for h in changing}
    assert reasons == {"create", "update", "resume"}
    assert all(h.fn is handlers.reconcile_fleet for h in changing)
    assert not any(getattr(h, "deleted", False) or h.reason == kopf.Reason.DELETE for h in changing)
    assert _selectors(changing) == {("flotilla.dev", "v1alpha1", "modelfleets")}


def test_every_child_kind_is_watched_by_label() -> None:
    watching = handlers.registry._watching.get_all_handlers()
    watched = {(g or "", v, n) for g, v, n in _selectors(watching)}
    for kind in kube.CHILD_KINDS:
        group, _, version = kind.api_version.rpartition("/")
        assert (group, version, kind.plural) in watched, kind
    for handler in watching:
        if handler.selector.any_name != "modelfleets":  # type: ignore[attr-defined]
            assert handler.labels == handlers.MANAGED


def test_indexes_cover_fleets_deployments_and_unschedulable_pods() -> None:
    indexing = handlers.registry._indexing.get_all_handlers()
    assert {h.id for h in indexing} == {"fleet_index", "deployment_index", "pod_index"}
    pods = next(h for h in indexing if h.id == "pod_index")
    assert pods.labels == handlers.MANAGED  # only the fleets' own pods


def test_fleet_entry_keeps_what_reconciling_needs() -> None:
    body = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": "f", "namespace": "ai", "uid": "u", "generation": 2, "managedFields": [{}]},
        "spec": {"models": []},
        "status": {"observedGeneration": 1},
    }
    entry = handling.fleet_entry(body)
    assert entry["metadata"]["uid"] == "u"
    assert "managedFields" not in entry["metadata"]
    assert entry["spec"] == {"models": []}
    assert entry["status"] == {"observedGeneration": 1}


def test_pod_events_refresh_status_only_when_scheduling_news() -> None:
    """Hundreds of pod events in a burst of new fleets: only unschedulable pods, or pods of a fleet whose
    status says one was, reach the handler."""
    context = contexts.Context(kube=None, config=None)  # type: ignore[arg-type]
    memo = {"flotilla": context}
    labels = {"flotilla.dev/fleet": "f"}
    stuck = {
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "x"}]
    }
    placed = {"conditions": [{"type": "PodScheduled", "status": "True"}]}
    news = handlers._pod_news
    assert news(status=stuck, namespace="ai", labels=labels, memo=memo)
    assert not news(status=placed, namespace="ai", labels=labels, memo=memo)
    context.fleets[("ai", "f")] = contexts.FleetState(
        published={"models": [{"name": "m", "message": "0/1 replicas ready; pods unschedulable: x"}]}
    )
    assert news(status=placed, namespace="ai", labels=labels, memo=memo)  # the pod that clears it
