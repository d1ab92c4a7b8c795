"""Planning: what a reconcile applies and prunes, and when a child counts as drifted (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.reconcile import planning


def obj(kind: str, name: str, api: str = "v1", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ai", **extra.pop("meta", {})}
    return {"apiVersion": api, "kind": kind, "metadata": meta, **extra}


DEP = "apps/v1"
UID = "fleet-uid"


def controlled(uid: str | None) -> dict[str, Any]:
    """metadata.ownerReferences naming a ModelFleet of ``uid`` as controller (none for None)."""
    refs = [] if uid is None else [{"kind": "ModelFleet", "name": "f", "uid": uid, "controller": True}]
    return {"ownerReferences": refs}


@pytest.mark.parametrize(
    ("desired", "observed", "applied", "pruned"),
    [
        pytest.param([], [], [], [], id="nothing"),
        pytest.param([obj("Service", "a")], [], ["a"], [], id="create"),
        pytest.param([obj("Service", "a")], [obj("Service", "a")], ["a"], [], id="unchanged-still-applied"),
        pytest.param(
            [obj("Service", "f-a")],
            [obj("Service", "f-a"), obj("Service", "f-b")],
            ["f-a"],
            ["f-b"],
            id="removed-model-pruned",
        ),
        pytest.param(
            [obj("Service", "f-a")],
            [obj("Deployment", "f-a", DEP)],
            ["f-a"],
            ["f-a"],
            id="same-name-other-kind-is-another-child",
        ),
        pytest.param(
            [],
            [obj("Service", "gone", meta={"deletionTimestamp": "2026-01-01T00:00:00Z"})],
            [],
            [],
            id="already-deleting-not-pruned-again",
        ),
        pytest.param(
            [],
            [obj("ConfigMap", "f-old", meta=controlled("another-fleet-uid"))],
            [],
            [],
            id="labelled-but-another-controller-not-pruned",
        ),
        pytest.param(
            [],
            [obj("ConfigMap", "f-old", meta=controlled(None))],
            [],
            [],
            id="labelled-without-controller-not-pruned",
        ),
    ],
)
def test_plan(
    desired: list[dict[str, Any]], observed: list[dict[str, Any]], applied: list[str], pruned: list[str]
) -> None:
    observed = [{**o, "metadata": {**controlled(UID), **o["metadata"]}} for o in observed]  # the fleet's own
    step = planning.plan(desired, observed, UID)
    assert [m["metadata"]["name"] for m in step.apply] == applied
    assert [m["metadata"]["name"] for m in step.prune] == pruned
    assert step.empty == (not applied and not pruned)


def test_plan_refuses_duplicate_children() -> None:
    with pytest.raises(ValueError, match="duplicate children: v1/Service/a"):
        planning.plan([obj("Service", "a"), obj("Service", "a")], [], UID)
    assert planning.duplicates([obj("Service", "a"), obj("Deployment", "a", DEP), obj("Service", "b")]) == []


@pytest.mark.parametrize(
    ("desired", "observed", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, False),  # server-added fields are not drift
        ({"a": 1}, {"a": 2}, True),
        ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2], "c": 0}}, False),
        ({"a": [1, 2]}, {"a": [1]}, True),  # removed list item
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "protocol": "TCP"}]}, False),  # defaulted field in list item
        ({"a": 1}, {}, True),  # removed field
        ({"a": 1}, {"a": 1.0}, False),
        ({"a": True}, {"a": 1}, True),  # bool is not an int here
        ({"a": "1Gi"}, {"a": "1Gi"}, False),
        ({"a": {"b": 1}}, {"a": "x"}, True),
        ([], [], False),
    ],
)
def test_drifted(desired: Any, observed: Any, expected: bool) -> None:
    assert planning.drifted(desired, observed) is expected


def test_spec_drift_ignores_status_and_server_metadata() -> None:
    desired = obj("Deployment", "f-a", DEP, meta={"labels": {"x": "1"}}, spec={"replicas": 2})
    observed = obj(
        "Deployment", "f-a", DEP,
        meta={"labels": {"x": "1", "extra": "y"}, "resourceVersion": "7", "uid": "u"},
        spec={"replicas": 2, "revisionHistoryLimit": 10},
        status={"readyReplicas": 0},
    )  # fmt: skip
    assert not planning.spec_drifted(desired, observed)
    observed["spec"]["replicas"] = 5
    assert planning.spec_drifted(desired, observed)
    observed["spec"]["replicas"] = 2
    observed["metadata"]["labels"]["x"] = "edited"
    assert planning.spec_drifted(desired, observed)


def test_spec_drift_sees_configmap_data() -> None:
    desired = obj("ConfigMap", "f-router", data={"router.yaml": "a: 1\n"})
    assert not planning.spec_drifted(desired, obj("ConfigMap", "f-router", data={"router.yaml": "a: 1\n"}))
    assert planning.spec_drifted(desired, obj("ConfigMap", "f-router", data={"router.yaml": "a: 2\n"}))


def test_find_and_selector() -> None:
    desired = [obj("Service", "a"), obj("Deployment", "a", DEP)]
    assert planning.find(desired, ("apps/v1", "Deployment", "a")) is desired[1]
    assert planning.find(desired, ("v1", "ConfigMap", "a")) is None
    assert planning.fleet_selector("assistants") == (
        "app.kubernetes.io/managed-by=flotilla,flotilla.dev/fleet=assistants"
    )


def test_waves_order_kinds_and_keep_input_order() -> None:
    manifests = [
        obj("Deployment", "d", DEP),
        obj("RoleBinding", "rb", "rbac.authorization.k8s.io/v1"),
        obj("Role", "r", "rbac.authorization.k8s.io/v1"),
        obj("Service", "s1"),
        obj("Widget", "w", "example.com/v1"),
        obj("Service", "s2"),
    ]
    first = {("rbac.authorization.k8s.io/v1", "Role"), ("v1", "Service")}
    second = {("rbac.authorization.k8s.io/v1", "RoleBinding"), (DEP, "Deployment")}
    result = [[m["metadata"]["name"] for m in wave] for wave in planning.waves(manifests, [first, second])]
    assert result == [["r", "s1", "s2"], ["d", "rb"], ["w"]]
    assert planning.waves([], [first]) == []


@pytest.mark.parametrize(("generation", "expected"), [(1, False), (2, True), (7, True), (None, True)])
def test_needs_listing_only_after_the_first_generation(generation: int | None, expected: bool) -> None:
    assert planning.needs_listing({"metadata": {"generation": generation}}) is expected
