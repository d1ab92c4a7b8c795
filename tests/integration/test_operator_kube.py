"""Flotilla's API client against the real apiserver: server-side apply, list, delete, discovery, Events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import operatorkit as ok
import pytest

from flotilla.api import fleet as fleet_api
from flotilla.reconcile import kube

pytestmark = pytest.mark.cluster


@pytest.fixture
def client(cluster: object) -> Iterator[kube.Kube]:
    connected = kube.Kube.connect()
    yield connected
    connected.close()


def configmap(namespace: str, data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "probe",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "flotilla"},
        },
        "data": {"k": data},
    }


def test_apply_is_idempotent_and_takes_fields_back(client: kube.Kube, namespace: str) -> None:
    first = client.apply(configmap(namespace, "a"))
    again = client.apply(configmap(namespace, "a"))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    ok.kubectl("patch", "configmap", "probe", "-n", namespace, "-p", '{"data": {"k": "edited"}}')
    restored = client.apply(configmap(namespace, "a"))  # force=true: the operator's field manager wins
    assert restored["data"] == {"k": "a"}
    managers = {m["manager"] for m in restored["metadata"]["managedFields"] if m["operation"] == "Apply"}
    assert managers == {"flotilla"}


def test_list_delete_with_uid_precondition(client: kube.Kube, namespace: str) -> None:
    created = client.apply(configmap(namespace, "a"))
    listed = client.list(kube.CONFIGMAP, namespace, "app.kubernetes.io/managed-by=flotilla")
    assert [(c["kind"], c["metadata"]["name"]) for c in listed] == [("ConfigMap", "probe")]
    assert client.delete(kube.CONFIGMAP, namespace, "probe", uid="not-the-uid") is False  # precondition
    assert client.delete(kube.CONFIGMAP, namespace, "probe", uid=created["metadata"]["uid"]) is True
    assert client.delete(kube.CONFIGMAP, namespace, "probe") is False  # already gone
    assert client.list(kube.CONFIGMAP, namespace, "app.kubernetes.io/managed-by=flotilla") == []


def test_errors_carry_the_apiserver_message(client: kube.Kube, namespace: str) -> None:
    bad = configmap(namespace, "a")
    bad["metadata"]["name"] = "Not_Valid"
    with pytest.raises(kube.ApiError) as caught:
        client.apply(bad)
    assert caught.value.status == 422
    assert not caught.value.retryable
    assert "Not_Valid" in str(caught.value)


def test_discovery_and_events(client: kube.Kube, flotilla_crds: None, namespace: str) -> None:
    assert client.serves(fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL)
    assert not client.serves(fleet_api.GROUP, "v9", fleet_api.PLURAL)
    assert not client.serves(fleet_api.GROUP, fleet_api.VERSION, "widgets")
    owner = {
        "apiVersion": f"{fleet_api.GROUP}/{fleet_api.VERSION}",
        "kind": fleet_api.KIND,
        "metadata": {"name": "f", "namespace": namespace, "uid": "0000"},
    }
    client.post_event(owner, "Normal", "Probe", "hello")
    events = ok.get_json("events", "-n", namespace, "--field-selector=reason=Probe")["items"]
    assert [(e["involvedObject"]["name"], e["message"], e["source"]["component"]) for e in events] == [
        ("f", "hello", "flotilla")
    ]
