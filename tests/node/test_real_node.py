"""Acceptance of the real worker node `real-0` (issue 5): it is Ready, runs our images for real through
containerd, gives pods Service networking (kube-proxy) and the `kubernetes` Service, and leaves the kwok
GPU node to GPU pods. Pods are placed on it with its toleration and node selector (it is tainted so that
tests which do not ask for it keep landing on kwok nodes).
"""

from __future__ import annotations

import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from clusterlib import sessions
from clusterlib.sessions import RealNode
from clusterlib.waiting import wait_until

pytestmark = pytest.mark.realnode

POD_TIMEOUT_S = 90  # a pod start on the loaded 2-core machine (sandbox, CNI, container) takes seconds


def _echo_pod(node: RealNode, name: str, labels: dict[str, str]) -> client.V1Pod:
    container = client.V1Container(
        name="echo",
        image=node.images["echo"],
        image_pull_policy="IfNotPresent",  # no registry: the image was imported into the node's containerd
        ports=[client.V1ContainerPort(container_port=8080)],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/ready", port=8080), period_seconds=1
        ),
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(
            containers=[container],
            node_selector=node.node_selector,
            tolerations=[client.V1Toleration(**node.toleration)],
            termination_grace_period_seconds=1,
        ),
    )


def _running(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    """The pod when it is Running and Ready, else None (Any: the client's models are loosely typed)."""
    pod: Any = core.read_namespaced_pod(name, namespace)
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return pod if pod.status.phase == "Running" and ready else None


def _start(core: client.CoreV1Api, namespace: str, pod: client.V1Pod) -> Any:
    core.create_namespaced_pod(namespace, pod)
    return _wait_running(core, namespace, str(pod.metadata.name if pod.metadata else ""))


def _wait_running(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    return wait_until(lambda: _running(core, namespace, name), POD_TIMEOUT_S, f"pod {name} Running and Ready")


def _ctr(node: RealNode, *args: str) -> str:
    cmd = ["ctr", "--address", str(node.containerd_socket), "--namespace", "k8s.io", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout


def _running_tasks(node: RealNode) -> dict[str, str]:
    """containerd task id -> status, as `ctr tasks ls` reports them."""
    lines = _ctr(node, "tasks", "ls").splitlines()[1:]
    return {line.split()[0]: line.split()[2] for line in lines if line.strip()}


def _http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _node(api: client.ApiClient, name: str) -> Any:
    return client.CoreV1Api(api).read_node(name)


def test_real_node_is_ready_with_containerd(api: client.ApiClient, real_node: RealNode) -> None:
    node = _node(api, real_node.name)
    conditions = {c.type: c.status for c in node.status.conditions}
    assert conditions["Ready"] == "True"
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    assert node.status.node_info.kubelet_version.startswith("v1.")
    assert node.spec.taints[0].key == real_node.toleration["key"]
    assert "kwok" not in node.status.node_info.kernel_version  # a real kernel, not kwok's fake one


def test_pod_runs_for_real_and_stops_when_deleted(
    api: client.ApiClient, namespace: str, real_node: RealNode
) -> None:
    core = client.CoreV1Api(api)
    pod = _start(core, namespace, _echo_pod(real_node, "echo", {"app": "echo"}))
    assert pod.spec.node_name == real_node.name
    container_id = pod.status.container_statuses[0].container_id.removeprefix("containerd://")
    assert _running_tasks(real_node).get(container_id) == "RUNNING"
    status, body = _http_get(f"http://{pod.status.pod_ip}:8080/hello")  # the bridge is reachable from here
    assert (status, body) == (200, "echo from echo: /hello\n")

    core.delete_namespaced_pod("echo", namespace, grace_period_seconds=1)
    wait_until(lambda: container_id not in _running_tasks(real_node), POD_TIMEOUT_S, "the container to stop")


def test_pod_reaches_another_through_its_service(
    api: client.ApiClient, namespace: str, real_node: RealNode
) -> None:
    core = client.CoreV1Api(api)
    _start(core, namespace, _echo_pod(real_node, "server", {"app": "server"}))
    client_pod = _start(core, namespace, _echo_pod(real_node, "client", {"app": "client"}))
    service: Any = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="server"),
            spec=client.V1ServiceSpec(
                selector={"app": "server"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
            ),
        ),
    )
    cluster_ip = service.spec.cluster_ip
    target = urllib.parse.quote(f"http://{cluster_ip}/via-service", safe="")
    url = f"http://{client_pod.status.pod_ip}:8080/get?url={target}"

    def relayed() -> str | None:  # kube-proxy programs the rules a moment after the Service appears
        status, body = _http_get(url)
        return body if status == 200 else None

    assert (
        wait_until(relayed, 30, f"client -> Service {cluster_ip} -> server")
        == "echo from server: /via-service\n"
    )


def test_pod_resolves_services_by_name(api: client.ApiClient, namespace: str, real_node: RealNode) -> None:
    """Cluster DNS (CoreDNS on the node IP behind the kube-dns Service): short and full Service names."""
    core = client.CoreV1Api(api)
    _start(core, namespace, _echo_pod(real_node, "named", {"app": "named"}))
    asker = _start(core, namespace, _echo_pod(real_node, "asker", {"app": "asker"}))
    spec = client.V1ServiceSpec(
        selector={"app": "named"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
    )
    core.create_namespaced_service(
        namespace, client.V1Service(metadata=client.V1ObjectMeta(name="named"), spec=spec)
    )
    for host in ("named", f"named.{namespace}.svc", f"named.{namespace}.svc.cluster.local"):
        target = urllib.parse.quote(f"http://{host}/by-name", safe="")
        url = f"http://{asker.status.pod_ip}:8080/get?url={target}"

        def fetched(url: str = url) -> str | None:
            status, body = _http_get(url)
            return body if status == 200 else None

        assert wait_until(fetched, 30, f"asker -> {host}") == "echo from named: /by-name\n"


def test_pod_reaches_the_apiserver_as_in_cluster_client(
    api: client.ApiClient, namespace: str, real_node: RealNode
) -> None:
    """KUBERNETES_SERVICE_HOST, the service-account token and CA work, as the operator's pod needs."""
    core = client.CoreV1Api(api)
    pod = _start(core, namespace, _echo_pod(real_node, "incluster", {"app": "incluster"}))
    path = urllib.parse.quote(f"/api/v1/namespaces/{namespace}/pods", safe="")
    status, body = _http_get(f"http://{pod.status.pod_ip}:8080/kube?path={path}")
    # Authenticated as the pod's service account (TLS verified against the cluster CA), which RBAC does not
    # allow to list pods: a 403 naming that identity proves the whole path; an error would be a 502.
    assert status == 403, body
    assert f"system:serviceaccount:{namespace}:default" in body


def test_kwok_nodes_keep_their_pods(api: client.ApiClient, namespace: str, real_node: RealNode) -> None:
    """GPU pods still land on the kwok GPU node, untolerating pods on the kwok CPU node, never on real-0."""
    core = client.CoreV1Api(api)
    gpu_toleration = client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
    pods = {
        "gpu": client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="m",
                    image="vllm/vllm-openai:latest",
                    resources=client.V1ResourceRequirements(limits={"nvidia.com/gpu": "1"}),
                )
            ],
            tolerations=[gpu_toleration],
        ),
        "plain": client.V1PodSpec(containers=[client.V1Container(name="m", image="busybox")]),
    }
    for name, spec in pods.items():
        core.create_namespaced_pod(
            namespace, client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=spec)
        )
    placed = {name: _wait_running(core, namespace, name) for name in pods}
    assert placed["gpu"].spec.node_name == "kwok-gpu-0"
    assert placed["plain"].spec.node_name == "kwok-cpu-0"
    assert real_node.name not in {p.spec.node_name for p in placed.values()}


def test_a_second_real_node_is_refused_and_the_first_keeps_running(
    api: client.ApiClient, real_node: RealNode, tmp_path: Path
) -> None:
    """One real node per machine (bridge, pod CIDR, iptables): another cluster asking for one is told why."""
    state_dir = tmp_path / "state"
    try:
        done = sessions.run(["up", "--real-node", "--timeout", "200"], state_dir, timeout=300)
    finally:
        sessions.run(["down"], state_dir, timeout=120)
    assert done.returncode == 1
    assert "the real node runs for the cluster in" in done.stderr
    assert "Traceback" not in done.stderr
    node = _node(api, real_node.name)
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert real_node.containerd_socket.exists()
