"""Owner references: every child names its fleet as controller, without mutating the rendered manifest."""

from __future__ import annotations

from flotilla.reconcile import owners

FLEET = {
    "apiVersion": "flotilla.dev/v1alpha1",
    "kind": "ModelFleet",
    "metadata": {"name": "assistants", "namespace": "ai", "uid": "1234"},
}


def test_owned_sets_a_single_controller_reference_on_a_copy() -> None:
    child = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x", "ownerReferences": [{"uid": "old"}]},
    }
    result = owners.owned(child, FLEET)
    assert result["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "flotilla.dev/v1alpha1",
            "kind": "ModelFleet",
            "name": "assistants",
            "uid": "1234",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert child["metadata"]["ownerReferences"] == [{"uid": "old"}]  # input untouched
    assert owners.controller_uid(result) == "1234"


def test_controller_uid_ignores_non_controller_owners() -> None:
    child = {"metadata": {"ownerReferences": [{"uid": "a"}, {"uid": "b", "controller": True}]}}
    assert owners.controller_uid(child) == "b"
    assert owners.controller_uid({"metadata": {}}) is None


def test_conflict_only_when_another_controls_the_name() -> None:
    wanted = owners.owned(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a-b-router"}}, FLEET
    )
    other = {"kind": "ModelFleet", "name": "a-b", "uid": "99", "controller": True}
    assert owners.conflict(wanted, None, "1234") is None  # nothing there: create it
    assert owners.conflict(wanted, wanted, "1234") is None  # the fleet's own: apply over it
    assert owners.conflict(wanted, {"metadata": {"ownerReferences": [other]}}, "1234") == (
        "ConfigMap a-b-router exists and is controlled by ModelFleet a-b (uid 99)"
    )
    assert owners.conflict(wanted, {"metadata": {"name": "a-b-router"}}, "1234") == (
        "ConfigMap a-b-router exists and has no controller"
    )
