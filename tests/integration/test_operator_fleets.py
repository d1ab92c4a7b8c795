"""Acceptance: the operator, as a process, reconciles the example fleets on the real local cluster."""

from __future__ import annotations

import json
import time
from typing import Any

import operatorkit as ok
import pytest

from flotilla.reconcile import applying, desiring, kube, owners, planning

pytestmark = pytest.mark.cluster

REALISTIC = ok.ROOT / "examples" / "02-realistic"
MINIMAL = ok.ROOT / "examples" / "01-minimal" / "fleet.yaml"
TIMEOUT = 120.0


def fleet(namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = ok.get_json("modelfleet", name, "-n", namespace)
    return found


def wait_ready(namespace: str, name: str, generation: int | None = None) -> dict[str, Any]:
    """Wait until the fleet is Ready for its current (or the given) generation."""

    def ready() -> dict[str, Any] | None:
        body = fleet(namespace, name)
        want = generation or body["metadata"]["generation"]
        current = (body.get("status") or {}).get("observedGeneration") == want
        return body if current and ok.condition(body, "Ready") == "True" else None

    return ok.wait_until(ready, TIMEOUT, f"fleet {namespace}/{name} Ready")


def child_map(namespace: str, name: str) -> dict[planning.ChildKey, dict[str, Any]]:
    return {planning.child_key(c): c for c in ok.children(namespace, name)}


def wait_children(namespace: str, doc: dict[str, Any]) -> dict[planning.ChildKey, dict[str, Any]]:
    """Wait until exactly the rendered children exist (nothing missing, nothing extra)."""
    want = ok.expected_keys(doc)
    name = doc["metadata"]["name"]
    return ok.wait_until(
        lambda: (found := child_map(namespace, name)) and set(found) == want and found,
        TIMEOUT,
        f"children of {name} to be exactly {sorted(want)}",
    )


def events(namespace: str, reason: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok.get_json("events", "-n", namespace, f"--field-selector=reason={reason}")[
        "items"
    ]
    return items


def patch_fleet(namespace: str, name: str, patch: list[dict[str, Any]]) -> None:
    ok.kubectl("patch", "modelfleet", name, "-n", namespace, "--type=json", "-p", json.dumps(patch))


def test_realistic_example_becomes_ready_with_owned_children(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    ok.kubectl("apply", "-n", namespace, "-f", str(REALISTIC / "secret.yaml"))
    doc = ok.fleet_doc(REALISTIC / "fleet.yaml", namespace)
    ok.apply_doc(doc)
    created = fleet(namespace, "assistants")
    doc["metadata"]["uid"] = created["metadata"]["uid"]
    found = wait_children(namespace, doc)
    kinds = {key[1] for key in found}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"} <= kinds
    for child in found.values():
        refs = child["metadata"]["ownerReferences"]
        assert refs == [
            {
                "apiVersion": "flotilla.dev/v1alpha1",
                "kind": "ModelFleet",
                "name": "assistants",
                "uid": created["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], child["metadata"]["name"]
        managers = {
            m["manager"] for m in child["metadata"].get("managedFields", []) if m["operation"] == "Apply"
        }
        annotations = child["metadata"].get("annotations") or {}
        counted = {"flotilla.dev/replicas", "flotilla.dev/initial-replicas"} & set(annotations)
        assert managers == ({"flotilla", "flotilla-replicas"} if counted else {"flotilla"})

    body = wait_ready(namespace, "assistants")
    status = body["status"]
    assert status["modelsReady"] == "3/3"
    assert status["endpoint"] == f"http://assistants-router.{namespace}.svc:8080/v1"
    assert {m["name"]: (m["phase"], m["readyReplicas"]) for m in status["models"]} == {
        "coder": ("Ready", 1),
        "math": ("Ready", 1),
        "pocket": ("Ready", 1),
    }
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "ModelsReady": "True",
        "RouterReady": "True",
        "Degraded": "False",
    }
    # the GPU models landed on the GPU node (kwok marked them Ready there)
    pods = ok.get_json("pods", "-n", namespace, "-l", "flotilla.dev/model=coder")["items"]
    assert pods and all(p["spec"]["nodeName"] == "kwok-gpu-0" for p in pods)

    table = ok.kubectl("get", "mf", "-n", namespace).splitlines()
    assert table[0].split() == [
        "NAME",
        "READY",
        "MODELS",
        "ENDPOINT",
        "SPEND",
        "CANDIDATES",
        "TRAINING",
        "AGE",
    ]
    assert table[1].split()[:4] == ["assistants", "True", "3/3", status["endpoint"]]
    assert ok.wait_until(lambda: events(namespace, "FleetReady"), 30, "a FleetReady Event")
    assert ok.log_errors(operator.log()) == []


def test_second_reconcile_changes_nothing(operator: ok.OperatorProcess, namespace: str) -> None:
    doc = ok.fleet_doc(MINIMAL, namespace)
    ok.apply_doc(doc)
    body = wait_ready(namespace, "minimal")
    before = {key: c["metadata"]["resourceVersion"] for key, c in child_map(namespace, "minimal").items()}

    # a metadata-only change makes kopf run the update handler again: a full reconcile of the same spec
    ok.kubectl("annotate", "mf", "minimal", "-n", namespace, "flotilla.dev/touched=1")

    def handled() -> bool:
        annotations = fleet(namespace, "minimal")["metadata"].get("annotations", {})
        return "flotilla.dev/touched" in annotations.get(
            "operator.flotilla.dev/last-handled-configuration", ""
        )

    ok.wait_until(handled, 30, "the operator to handle the annotated fleet")
    after = {key: c["metadata"]["resourceVersion"] for key, c in child_map(namespace, "minimal").items()}
    assert after == before

    # and applying the rendered children ourselves with the operator's field manager is a no-op too
    client = kube.Kube.connect()
    try:
        doc["metadata"]["uid"] = body["metadata"]["uid"]
        doc["apiVersion"], doc["kind"] = "flotilla.dev/v1alpha1", "ModelFleet"
        for manifest in desiring.desired_children(doc):
            # what the operator applies to an existing child (a fixed replica count is applied apart)
            result = client.apply(owners.owned(applying.without_replicas(manifest)[0], doc))
            assert result["metadata"]["resourceVersion"] == before[planning.child_key(manifest)]
    finally:
        client.close()
    assert ok.log_errors(operator.log()) == []


def test_spec_edits_are_followed(operator: ok.OperatorProcess, namespace: str) -> None:
    doc = ok.fleet_doc(MINIMAL, namespace)
    ok.apply_doc(doc)
    wait_ready(namespace, "minimal", generation=1)
    deployment = ("apps/v1", "Deployment", "minimal-pocket")
    pdb = ("policy/v1", "PodDisruptionBudget", "minimal-pocket")
    assert pdb not in child_map(namespace, "minimal")

    patch_fleet(namespace, "minimal", [
        {"op": "add", "path": "/spec/models/0/replicas", "value": {"min": 2, "max": 2}},
        {"op": "add", "path": "/spec/models/0/args", "value": ["--threads", "3"]},
    ])  # fmt: skip
    wait_ready(namespace, "minimal", generation=2)
    found = child_map(namespace, "minimal")
    assert found[deployment]["spec"]["replicas"] == 2
    container = found[deployment]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--threads", "3"]
    assert pdb in found  # replicas > 1 now

    second = {**doc["spec"]["models"][0], "name": "second", "tasks": ["second"]}
    patch_fleet(namespace, "minimal", [{"op": "add", "path": "/spec/models/-", "value": second}])
    body = wait_ready(namespace, "minimal", generation=3)
    assert body["status"]["modelsReady"] == "2/2"
    assert ("apps/v1", "Deployment", "minimal-second") in child_map(namespace, "minimal")

    patch_fleet(namespace, "minimal", [{"op": "remove", "path": "/spec/models/1"}])
    body = wait_ready(namespace, "minimal", generation=4)
    ok.wait_until(
        lambda: not any(key[2] == "minimal-second" for key in child_map(namespace, "minimal")),
        TIMEOUT,
        "the removed model's children to be deleted",
    )
    assert [m["name"] for m in body["status"]["models"]] == ["pocket"]
    doc = fleet(namespace, "minimal")
    assert set(child_map(namespace, "minimal")) == ok.expected_keys(doc)
    assert ok.log_errors(operator.log()) == []


def test_deleted_or_edited_children_are_put_back(operator: ok.OperatorProcess, namespace: str) -> None:
    doc = ok.fleet_doc(MINIMAL, namespace)
    ok.apply_doc(doc)
    wait_ready(namespace, "minimal")
    found = child_map(namespace, "minimal")

    for kind, name in [
        ("deployment", "minimal-pocket"),
        ("configmap", "minimal-router"),
        ("service", "minimal-pocket"),
    ]:
        key = next(k for k in found if k[1].lower() == kind and k[2] == name)
        old_uid = found[key]["metadata"]["uid"]
        ok.kubectl("delete", kind, name, "-n", namespace, "--wait=true")
        ok.wait_until(
            lambda key=key, old_uid=old_uid: (
                (c := child_map(namespace, "minimal").get(key)) and c["metadata"]["uid"] != old_uid
            ),
            30,
            f"{kind} {name} to be recreated",
        )
    recreated = ok.wait_until(lambda: events(namespace, "ChildRecreated"), 30, "ChildRecreated Events")
    assert any("Deployment minimal-pocket" in e["message"] for e in recreated)

    # someone edits a field the operator owns: it is taken back
    image = found[("apps/v1", "Deployment", "minimal-pocket")]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    ok.kubectl("set", "image", "deployment/minimal-pocket", "-n", namespace, "*=example.invalid/hacked:1")

    def restored() -> bool:
        dep = child_map(namespace, "minimal")[("apps/v1", "Deployment", "minimal-pocket")]
        return bool(dep["spec"]["template"]["spec"]["containers"][0]["image"] == image)

    ok.wait_until(restored, 30, "the edited Deployment's image to be restored")
    assert ok.wait_until(lambda: events(namespace, "ChildRestored"), 30, "a ChildRestored Event")
    wait_ready(namespace, "minimal")
    assert ok.log_errors(operator.log()) == []


def test_deleting_the_fleet_garbage_collects_everything(operator: ok.OperatorProcess, namespace: str) -> None:
    doc = ok.fleet_doc(MINIMAL, namespace)
    ok.apply_doc(doc)
    wait_children(namespace, doc)
    ok.kubectl("delete", "mf", "minimal", "-n", namespace)
    ok.wait_until(lambda: not child_map(namespace, "minimal"), TIMEOUT, "garbage collection of every child")
    time.sleep(3)  # the operator saw the deletions; it must not have recreated anything
    assert child_map(namespace, "minimal") == {}
    assert ok.log_errors(operator.log()) == []
