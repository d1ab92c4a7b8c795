"""Acceptance: a fleet changes only objects it controls, on the real local cluster with the operator process.

Fleet ``a`` with model ``b-router`` and fleet ``a-b`` both render ``a-b-router`` (``<fleet>-<model>`` and
``<fleet>-router``). Whichever comes second is refused: Ready=False and Degraded=True with reason
NameConflict, one Warning Event, nothing written, and retried, so it converges once the other object is
gone. The same holds for an unrelated object that happens to have a child's name. Pruning deletes only
children whose controller is the fleet, whatever labels other objects carry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import operatorkit as ok
import pytest

from flotilla.api import fleet as fleet_api
from flotilla.reconcile import desiring

pytestmark = pytest.mark.cluster

TIMEOUT = 120.0
CONFLICT = "NameConflict"


@pytest.fixture
def operator(
    flotilla_crds: None,
    operator_kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ok.OperatorProcess]:
    """The operator, allowed plain http to the stand-in fallback's in-cluster host (so is the renderer this
    process runs for the expected children)."""
    monkeypatch.setenv("FLOTILLA_ALLOWED_HTTP_PROVIDER_HOSTS", "standin")
    desiring.policy.cache_clear()
    process = ok.OperatorProcess(operator_kubeconfig, tmp_path, args=("--namespace", namespace))
    process.start()
    yield process
    process.stop()
    desiring.policy.cache_clear()


def fallback_fleet(namespace: str, name: str) -> dict[str, Any]:
    """A fleet of one stand-in fallback: only the router's children."""
    fallback = {"name": "frontier", "provider": "openai-compatible", "baseURL": "http://standin:8080/v1",
                "model": "stand-in"}  # fmt: skip
    return {
        "apiVersion": f"{fleet_api.GROUP}/{fleet_api.VERSION}",
        "kind": fleet_api.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"fallbacks": [fallback]},
    }


def model_fleet(namespace: str, name: str, model: str) -> dict[str, Any]:
    """A fleet of one llama.cpp model called ``model``."""
    doc = fallback_fleet(namespace, name)
    doc["spec"] = {"models": [{"name": model, "source": {"uri": "hf://unsloth/gemma-3-270m-it-GGUF"},
                               "runtime": "llamacpp", "quantization": "Q4_K_M"}]}  # fmt: skip
    return doc


def condition(namespace: str, name: str, kind: str) -> dict[str, Any] | None:
    """One condition of the fleet's current generation, None until the operator reported on it."""
    body = ok.get_json("modelfleet", name, "-n", namespace)
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"]["generation"]:
        return None
    return next((dict(c) for c in status.get("conditions") or [] if c["type"] == kind), None)


def wait_refused(namespace: str, name: str) -> dict[str, Any]:
    """Wait until the fleet's Ready condition says NameConflict; its Degraded condition says the same."""
    ready = ok.wait_until(
        lambda: (c := condition(namespace, name, "Ready")) and c["reason"] == CONFLICT and c,
        TIMEOUT,
        f"fleet {name} refused with {CONFLICT}",
    )
    assert ready["status"] == "False"
    degraded = condition(namespace, name, "Degraded")
    assert degraded is not None and (degraded["status"], degraded["reason"]) == ("True", CONFLICT)
    return ready


def events(namespace: str, fleet: str, reason: str) -> list[dict[str, Any]]:
    selector = f"--field-selector=reason={reason},involvedObject.name={fleet}"
    items: list[dict[str, Any]] = ok.get_json("events", "-n", namespace, selector)["items"]
    return items


def snapshot(namespace: str, fleet: str) -> dict[tuple[str, str, str], tuple[str, str]]:
    """Each child of ``fleet``: its resourceVersion and its spec/data, as JSON."""
    return {
        (c["apiVersion"], c["kind"], c["metadata"]["name"]): (
            c["metadata"]["resourceVersion"],
            json.dumps({k: v for k, v in c.items() if k not in ("metadata", "status")}, sort_keys=True),
        )
        for c in ok.children(namespace, fleet)
    }


def wait_children(namespace: str, doc: dict[str, Any]) -> None:
    want = ok.expected_keys(doc)
    name = doc["metadata"]["name"]
    ok.wait_until(
        lambda: {k for k in snapshot(namespace, name)} == want, TIMEOUT, f"the children of fleet {name}"
    )


def attempts(operator: ok.OperatorProcess) -> int:
    """How many reconciles the operator refused for a name conflict so far."""
    return operator.log().count("name conflict:")


def tracebacks(operator: ok.OperatorProcess) -> list[str]:
    return [line for line in operator.log().splitlines() if "Traceback" in line]


def test_colliding_fleet_is_refused_and_the_other_fleets_objects_untouched(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    first = fallback_fleet(namespace, "a-b")
    ok.apply_doc(first)
    wait_children(namespace, first)
    before = snapshot(namespace, "a-b")
    assert ("apps/v1", "Deployment", "a-b-router") in before

    second = model_fleet(namespace, "a", "b-router")  # its model renders a-b-router too
    ok.apply_doc(second)
    ready = wait_refused(namespace, "a")
    assert "Deployment a-b-router exists and is controlled by ModelFleet a-b" in ready["message"]
    warned = ok.wait_until(lambda: events(namespace, "a", CONFLICT), 30, "a NameConflict Event on fleet a")
    assert warned[0]["type"] == "Warning"
    assert "a-b-router" in warned[0]["message"] and "ModelFleet a-b" in warned[0]["message"]
    ok.wait_until(lambda: attempts(operator) >= 2, 60, "a second, retried reconcile of fleet a")

    assert snapshot(namespace, "a-b") == before  # not one write to the other fleet's objects
    assert snapshot(namespace, "a") == {}  # nor to any object of its own: the whole reconcile refused
    assert len(events(namespace, "a", CONFLICT)) == 1  # the retry met the same conflict: no new Event
    assert (condition(namespace, "a-b", "Degraded") or {}).get("reason") != CONFLICT
    assert tracebacks(operator) == []


def test_unrelated_object_with_a_childs_name_is_left_alone_until_removed(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    ok.kubectl("create", "configmap", "solo-router", "-n", namespace, "--from-literal=owner=someone-else")
    theirs = ok.get_json("configmap", "solo-router", "-n", namespace)

    doc = fallback_fleet(namespace, "solo")
    ok.apply_doc(doc)
    ready = wait_refused(namespace, "solo")
    assert ready["message"] == "ConfigMap solo-router exists and has no controller"
    ok.wait_until(lambda: events(namespace, "solo", CONFLICT), 30, "a NameConflict Event on fleet solo")
    now = ok.get_json("configmap", "solo-router", "-n", namespace)
    assert now["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]
    assert now["data"] == {"owner": "someone-else"} and "ownerReferences" not in now["metadata"]
    assert snapshot(namespace, "solo") == {}

    ok.kubectl("delete", "configmap", "solo-router", "-n", namespace)  # the retry now finds the name free
    wait_children(namespace, doc)
    ok.wait_until(
        lambda: (c := condition(namespace, "solo", "Degraded")) and c["reason"] != CONFLICT,
        TIMEOUT,
        "fleet solo no longer refused",
    )
    assert tracebacks(operator) == []


def test_pruning_leaves_labelled_objects_of_another_controller(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    doc = fallback_fleet(namespace, "p")
    ok.apply_doc(doc)
    wait_children(namespace, doc)
    ok.kubectl("create", "configmap", "holder", "-n", namespace)
    holder = ok.get_json("configmap", "holder", "-n", namespace)["metadata"]
    labels = {"app.kubernetes.io/managed-by": "flotilla", "flotilla.dev/fleet": "p"}
    foreign_owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "holder", "uid": holder["uid"],
                     "controller": True}  # fmt: skip
    for name, refs in (("p-stray", []), ("p-foreign", [foreign_owner])):
        meta = {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": refs}
        ok.apply_doc({"apiVersion": "v1", "kind": "ConfigMap", "data": {"keep": "me"}, "metadata": meta})
    versions = {n: ok.get_json("configmap", n, "-n", namespace)["metadata"]["resourceVersion"]
                for n in ("p-stray", "p-foreign")}  # fmt: skip

    doc["spec"]["router"] = {"replicas": 2}  # generation 2: the operator lists the fleet's labels and prunes
    ok.apply_doc(doc)
    ok.wait_until(
        lambda: condition(namespace, "p", "Ready"), TIMEOUT, "generation 2 of fleet p applied (and pruned)"
    )
    for name, version in versions.items():
        kept = ok.get_json("configmap", name, "-n", namespace)
        assert kept["metadata"]["resourceVersion"] == version, name
    assert tracebacks(operator) == []
