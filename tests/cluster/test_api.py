"""Acceptance: the apiserver validates CRDs with CEL, nodes are Ready, tools report the pinned versions."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from clusterlib import settings
from clusterlib.waiting import wait_until

pytestmark = pytest.mark.cluster

GROUP = "test.flotilla.dev"
CEL_MESSAGE = "minReplicas must not exceed maxReplicas"


def _crd(plural: str) -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "required": ["minReplicas", "maxReplicas"],
        "properties": {
            "minReplicas": {"type": "integer", "minimum": 0},
            "maxReplicas": {"type": "integer", "minimum": 1},
        },
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.maxReplicas", "message": CEL_MESSAGE},
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": plural.capitalize()[:-1]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}},
                }
            ],
        },
    }


@pytest.fixture
def crd_plural(api: client.ApiClient) -> Iterator[str]:
    """A fresh CRD with a CEL rule, Established, deleted after the test."""
    ext = client.ApiextensionsV1Api(api)
    plural = f"pools{uuid.uuid4().hex[:6]}s"
    ext.create_custom_resource_definition(_crd(plural))

    def established() -> bool:
        crd = ext.read_custom_resource_definition(f"{plural}.{GROUP}")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_until(established, 30, f"CRD {plural} to be Established")
    yield plural
    ext.delete_custom_resource_definition(f"{plural}.{GROUP}")


def _create(api: client.ApiClient, namespace: str, plural: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": plural.capitalize()[:-1],
        "metadata": {"name": f"obj-{uuid.uuid4().hex[:6]}"},
        "spec": spec,
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, "v1", namespace, plural, body)


def test_cel_rule_rejects_bad_object_with_apiserver_message(
    api: client.ApiClient, namespace: str, crd_plural: str
) -> None:
    _create(api, namespace, crd_plural, {"minReplicas": 1, "maxReplicas": 3})  # valid: accepted
    with pytest.raises(ApiException) as rejected:
        _create(api, namespace, crd_plural, {"minReplicas": 5, "maxReplicas": 2})
    assert rejected.value.status == 422
    assert CEL_MESSAGE in json.loads(rejected.value.body)["message"]


def test_schema_rejects_wrong_type(api: client.ApiClient, namespace: str, crd_plural: str) -> None:
    with pytest.raises(ApiException) as rejected:
        _create(api, namespace, crd_plural, {"minReplicas": "one", "maxReplicas": 2})
    assert rejected.value.status == 422
    assert "spec.minReplicas" in json.loads(rejected.value.body)["message"]


def _kubectl_json(*args: str) -> Any:
    done = subprocess.run(["kubectl", *args, "-o", "json"], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_kubectl_lists_both_nodes_ready() -> None:
    nodes = _kubectl_json("get", "nodes")["items"]
    ready = {
        n["metadata"]["name"]: next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")
        for n in nodes
    }
    # Other tiers may add nodes to a shared cluster (a real kubelet in e2e), so only ours are asserted.
    assert {name: ready.get(name) for name in ("kwok-cpu-0", "kwok-gpu-0")} == {
        "kwok-cpu-0": "True",
        "kwok-gpu-0": "True",
    }
    table = subprocess.run(["kubectl", "get", "nodes"], capture_output=True, text=True, check=True).stdout
    rows = {line.split()[0]: line.split()[1] for line in table.splitlines()[1:]}
    assert rows["kwok-cpu-0"] == rows["kwok-gpu-0"] == "Ready"


def test_gpu_node_looks_like_a_gpu_pool_node() -> None:
    node = _kubectl_json("get", "node", "kwok-gpu-0")
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node["spec"]["taints"]
    cpu = _kubectl_json("get", "node", "kwok-cpu-0")
    assert "nvidia.com/gpu" not in cpu["status"]["capacity"]
    assert not cpu["spec"].get("taints")


def test_kubectl_and_helm_print_pinned_versions() -> None:
    pins = settings.read_pins()
    versions = _kubectl_json("version")
    assert versions["clientVersion"]["gitVersion"] == pins.kubernetes
    assert versions["serverVersion"]["gitVersion"] == pins.kubernetes
    helm = subprocess.run(["helm", "version"], capture_output=True, text=True, check=True).stdout
    assert f'Version:"{pins.helm}"' in helm
    assert 'GitTreeState:"clean"' in helm
