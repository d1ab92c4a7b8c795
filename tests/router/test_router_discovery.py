"""Pod discovery from a Service's EndpointSlices on the real local kube-apiserver (issue 2's cluster).

The EndpointSlice is written by the test (no kubelet runs a pod here). The API refuses loopback addresses
in slices and tests may only send traffic to loopback, so the slice lists a TEST-NET-1 address (192.0.2.0/24,
never routed) and the test reads the router's ``/upstreams`` instead of sending it requests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client, config
from routerkit import fleet_config

pytestmark = pytest.mark.cluster


@pytest.fixture
def namespace(kubeconfig: Path) -> Iterator[tuple[client.ApiClient, str]]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core = client.CoreV1Api(api)
    name = f"router-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield api, name
    core.delete_namespace(name)


def _slice(service: str, port: int, addresses: list[str], ready: bool) -> dict[str, object]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "addressType": "IPv4",
        "metadata": {"name": f"{service}-1", "labels": {"kubernetes.io/service-name": service}},
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses],
    }


def _endpoints(router) -> list[str]:
    pools = httpx.get(f"{router.url}/upstreams", timeout=10).json()["upstreams"]
    return [e["url"] for e in pools["pod"]["endpoints"]]


def _eventually(router, expected: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _endpoints(router)) != expected:
        assert time.monotonic() < deadline, f"router lists {seen}, expected {expected}"
        time.sleep(0.2)


def test_endpoints_follow_the_endpointslices(namespace, make_router, cloud, kubeconfig):
    api, ns = namespace
    port = 8080
    client.CoreV1Api(api).create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="pod"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=port, name="http")]),
        ),
    )  # no selector: the test writes the slices
    discovery = client.DiscoveryV1Api(api)
    discovery.create_namespaced_endpoint_slice(ns, _slice("pod", port, ["192.0.2.10"], ready=True))
    router = make_router(
        fleet_config(None, cloud.url, service={"namespace": ns, "name": "pod", "port": port}),
        env={"KUBECONFIG": str(kubeconfig)},
    )
    _eventually(router, ["http://192.0.2.10:8080"])  # listed at start
    discovery.patch_namespaced_endpoint_slice(
        "pod-1", ns, _slice("pod", port, ["192.0.2.10", "192.0.2.11"], True)
    )
    _eventually(router, ["http://192.0.2.10:8080", "http://192.0.2.11:8080"])  # watched changes
    discovery.patch_namespaced_endpoint_slice("pod-1", ns, _slice("pod", port, ["192.0.2.10"], ready=False))
    _eventually(router, [])  # not ready: not routed to
    discovery.create_namespaced_endpoint_slice(
        ns,
        {
            **_slice("pod", port, ["192.0.2.12"], True),
            "metadata": {"name": "pod-2", "labels": {"kubernetes.io/service-name": "pod"}},
        },
    )
    _eventually(router, ["http://192.0.2.12:8080"])  # several slices are merged
    discovery.delete_namespaced_endpoint_slice("pod-2", ns)
    _eventually(router, [])


def test_two_packed_models_share_a_pack_service_each_under_its_path(
    namespace, make_router, cloud, kubeconfig
):
    """A packed model's upstream is its pack's Service plus ``/<model>`` (``render.routing``)."""
    api, ns = namespace
    port = 8000
    client.CoreV1Api(api).create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="pack"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=8080, target_port=port, name="http")]),
        ),
    )
    discovery = client.DiscoveryV1Api(api)
    discovery.create_namespaced_endpoint_slice(ns, _slice("pack", port, ["192.0.2.20"], ready=True))
    config = fleet_config(
        None, cloud.url, service={"namespace": ns, "name": "pack", "port": port, "path": "/pod"}
    )
    other = {**config["models"][0], "name": "other", "servedModelName": "other",
             "service": {"namespace": ns, "name": "pack", "port": port, "path": "/other"}}  # fmt: skip
    config["models"].append(other)
    router = make_router(config, env={"KUBECONFIG": str(kubeconfig)})
    _eventually(router, ["http://192.0.2.20:8000/pod"])
    pools = httpx.get(f"{router.url}/upstreams", timeout=10).json()["upstreams"]
    assert [e["url"] for e in pools["other"]["endpoints"]] == ["http://192.0.2.20:8000/other"]
    discovery.patch_namespaced_endpoint_slice("pack-1", ns, _slice("pack", port, ["192.0.2.20"], ready=False))
    _eventually(router, [])  # the pack's pod goes: both models lose it
    pools = httpx.get(f"{router.url}/upstreams", timeout=10).json()["upstreams"]
    assert pools["other"]["endpoints"] == []
