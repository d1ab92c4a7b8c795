"""Acceptance: real scheduling, controllers and garbage collection on the kwok CPU and GPU nodes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from clusterlib.waiting import wait_until

pytestmark = pytest.mark.cluster

CPU_NODE, GPU_NODE = "kwok-cpu-0", "kwok-gpu-0"
GPU_TOLERATION = client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")


def _pod_spec(gpus: int = 0, tolerate_gpu: bool = False) -> client.V1PodSpec:
    resources = client.V1ResourceRequirements(
        requests={"cpu": "100m", "memory": "64Mi"},
        limits={"nvidia.com/gpu": str(gpus)} if gpus else None,
    )
    return client.V1PodSpec(
        containers=[client.V1Container(name="main", image="registry.k8s.io/pause:3.10", resources=resources)],
        tolerations=[GPU_TOLERATION] if tolerate_gpu else None,
    )


def _create_pod(
    api: client.ApiClient, namespace: str, name: str, spec: client.V1PodSpec, owner: Any = None
) -> None:
    meta = client.V1ObjectMeta(name=name, owner_references=[owner] if owner else None)
    pod = client.V1Pod(metadata=meta, spec=spec)
    client.CoreV1Api(api).create_namespaced_pod(namespace, pod)


def _pod(api: client.ApiClient, namespace: str, name: str) -> Any:
    return client.CoreV1Api(api).read_namespaced_pod(name, namespace)


def test_deployment_becomes_available_with_three_running_pods(api: client.ApiClient, namespace: str) -> None:
    labels = {"app": "web"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=3,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=_pod_spec()),
        ),
    )
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment)

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("web", namespace).status
        conditions = {c.type: c.status for c in status.conditions or []}
        return conditions.get("Available") == "True" and status.available_replicas == 3

    wait_until(available, 60, "Deployment web to be Available with 3 replicas")
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 3
    assert {p.status.phase for p in pods} == {"Running"}
    # The GPU node is tainted, so pods without the toleration can only be on the CPU node.
    assert {p.spec.node_name for p in pods} == {CPU_NODE}


def test_gpu_pod_with_toleration_lands_on_gpu_node(api: client.ApiClient, namespace: str) -> None:
    _create_pod(api, namespace, "gpu", _pod_spec(gpus=1, tolerate_gpu=True))
    pod = wait_until(
        lambda: (p := _pod(api, namespace, "gpu")).status.phase == "Running" and p,
        60,
        "the GPU pod to run",
    )
    assert pod.spec.node_name == GPU_NODE


def test_pod_without_toleration_never_lands_on_gpu_node(api: client.ApiClient, namespace: str) -> None:
    # Asks for a GPU but does not tolerate the GPU taint: no node fits, the scheduler must say so.
    _create_pod(api, namespace, "no-toleration", _pod_spec(gpus=1))
    # Pinned to the GPU node by its label but without the toleration: the taint must keep it off.
    selector_spec = _pod_spec()
    selector_spec.node_selector = {"nvidia.com/gpu.present": "true"}
    _create_pod(api, namespace, "gpu-selector", selector_spec)

    def unschedulable(name: str) -> bool:
        conditions = _pod(api, namespace, name).status.conditions or []
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions)

    for name in ("no-toleration", "gpu-selector"):
        wait_until(lambda name=name: unschedulable(name), 60, f"the scheduler to reject pod {name}")
    time.sleep(3)  # the scheduler retries unschedulable pods; give it time to (wrongly) place one
    for name in ("no-toleration", "gpu-selector"):
        pod = _pod(api, namespace, name)
        assert pod.spec.node_name is None, f"{name} was bound to {pod.spec.node_name}"
        assert pod.status.phase == "Pending"


def test_deleting_owner_garbage_collects_dependents(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"k": "v"})
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid, block_owner_deletion=True
    )
    for name in ("dependent-a", "dependent-b"):
        meta = client.V1ObjectMeta(name=name, owner_references=[reference])
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=meta))
    _create_pod(api, namespace, "dependent-pod", _pod_spec(), owner=reference)

    core.delete_namespaced_config_map("owner", namespace)

    def dependents_gone() -> bool:
        names = {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
        pods = core.list_namespaced_pod(namespace).items
        return not names & {"dependent-a", "dependent-b"} and not pods

    wait_until(dependents_gone, 60, "the garbage collector to delete the owner's dependents")
