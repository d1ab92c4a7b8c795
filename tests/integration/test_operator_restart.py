"""Acceptance: SIGKILL the operator in the middle of a big apply, restart it, and everything converges —
every fleet Ready, exactly the rendered children, no duplicate rollouts or Events, no errors in the log."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import operatorkit as ok
import pytest

from flotilla.reconcile import kube, planning

pytestmark = pytest.mark.cluster

MINIMAL = ok.ROOT / "examples" / "01-minimal" / "fleet.yaml"
FLEETS = 20


def small_fleet(namespace: str, index: int) -> dict[str, Any]:
    """The minimal example, renamed, with tiny requests so many fit on the kwok CPU node."""
    doc = ok.fleet_doc(MINIMAL, namespace, name=f"fleet-{index:02d}")
    doc["spec"]["models"][0]["resources"] = {"requests": {"cpu": "10m", "memory": "16Mi"}}
    doc["spec"]["router"] = {"replicas": 1, "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    return doc


def all_children(namespace: str) -> list[dict[str, Any]]:
    client = kube.Kube.connect()
    try:
        selector = f"{planning.MANAGED_BY}={planning.MANAGER}"
        return [item for k in kube.CHILD_KINDS for item in client.list(k, namespace, selector)]
    finally:
        client.close()


def test_kill_mid_reconcile_then_restart_converges(operator: ok.OperatorProcess, namespace: str) -> None:
    docs = [small_fleet(namespace, i) for i in range(FLEETS)]
    expected = {(d["metadata"]["name"], key) for d in docs for key in ok.expected_keys(d)}
    first_start = operator.starts

    ok.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    ok.wait_until(
        lambda: all_children(namespace), 60, "the operator to start creating children", interval=0.02
    )
    operator.kill()
    partial = len(all_children(namespace))
    assert 0 < partial < len(expected), f"the kill did not land mid-reconcile ({partial}/{len(expected)})"

    operator.start()

    def converged() -> bool:
        fleets = ok.get_json("modelfleets", "-n", namespace)["items"]
        return len(fleets) == FLEETS and all(
            ok.condition(f, "Ready") == "True"
            and f["status"]["observedGeneration"] == f["metadata"]["generation"]
            for f in fleets
        )

    ok.wait_until(converged, 180, f"all {FLEETS} fleets Ready after the restart", interval=1)

    found = [
        (c["metadata"]["labels"][planning.FLEET_LABEL], planning.child_key(c))
        for c in all_children(namespace)
    ]
    assert Counter(found).most_common(1)[0][1] == 1  # no duplicates
    assert set(found) == expected  # nothing missing, nothing extra

    # no spurious rollouts: each Deployment has exactly one ReplicaSet (its template never changed)
    replicasets = ok.get_json("replicasets", "-n", namespace)["items"]
    owners = Counter(rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets)
    assert owners and max(owners.values()) == 1, owners

    # each fleet announced readiness once
    ready_events = ok.get_json("events", "-n", namespace, "--field-selector=reason=FleetReady")["items"]
    per_fleet = Counter(e["involvedObject"]["name"] for e in ready_events for _ in range(e.get("count") or 1))
    assert per_fleet == {d["metadata"]["name"]: 1 for d in docs}

    assert operator.starts == first_start + 1
    assert ok.log_errors(operator.log()) == []
