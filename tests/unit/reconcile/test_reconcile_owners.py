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
