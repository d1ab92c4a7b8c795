"""Pure builders: the command line of each component and the fake node objects (no I/O here).

The apiserver flags follow controller-runtime's envtest (127.0.0.1 only, RBAC, service-account keys) plus a
static admin token, so the cluster behaves like a real one for the operator: admission, RBAC, CEL
validation, garbage collection and scheduling are the real code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"  # kwok manages nodes carrying this annotation = "fake"
GPU_PRODUCT = "NVIDIA-L4"
GPU_COUNT = 8
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"


@dataclass(frozen=True)
class Ports:
    """TCP ports on 127.0.0.1 chosen by `up` (kwok serves nothing, so needs none)."""

    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int


@dataclass(frozen=True)
class Files:
    """Files in the state dir that command lines refer to."""

    state_dir: Path
    bins: dict[str, Path]
    stages: Path

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def apiserver_cert(self) -> Path:
        """Self-signed serving cert (with its CA) the apiserver writes into its --cert-dir on first start."""
        return self.pki / "apiserver" / "apiserver.crt"


def etcd(files: Files, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(files.bins["etcd"]),
        "--name=flotilla",
        f"--data-dir={files.state_dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=flotilla={peer}",
        "--unsafe-no-fsync",  # a throwaway test cluster: durability is not worth the fsync latency
        "--log-level=warn",
    ]


def kube_apiserver(files: Files, ports: Ports) -> list[str]:
    return [
        str(files.bins["kube-apiserver"]),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={files.pki / 'apiserver'}",
        f"--token-auth-file={files.pki / 'tokens.csv'}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-issuer={SA_ISSUER}",
        f"--api-audiences={SA_ISSUER}",
        f"--service-account-key-file={files.pki / 'sa.pub'}",
        f"--service-account-signing-key-file={files.pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        # The endpoint of the `kubernetes` Service would be 127.0.0.1, which Endpoints validation rejects.
        "--endpoint-reconciler-type=none",
        # The real node's name does not resolve on this machine; its InternalIP (the bridge) does, and the
        # kubelet serves logs, exec and port-forward there.
        "--kubelet-preferred-address-types=InternalIP",
        # Aggregated APIs (KEDA's metrics apiserver in the tests) are reached at their Service's endpoints:
        # no kube-proxy routes Service IPs here.
        "--enable-aggregator-routing=true",
        "--profiling=false",
    ]


def _delegating(files: Files, binary: str, port: int, cert_dir: str) -> list[str]:
    """Flags shared by controller-manager and scheduler: admin kubeconfig, loopback HTTPS for /healthz."""
    kubeconfig = str(files.kubeconfig)
    return [
        str(files.bins[binary]),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={files.pki / cert_dir}",
        "--leader-elect=false",  # one replica: skip the lease round-trips at start
        "--profiling=false",
    ]


def kube_controller_manager(files: Files, ports: Ports) -> list[str]:
    return [
        *_delegating(files, "kube-controller-manager", ports.controller_manager, "controller-manager"),
        f"--service-account-private-key-file={files.pki / 'sa.key'}",
        f"--root-ca-file={files.apiserver_cert}",
        "--cluster-name=flotilla",
    ]


def kube_scheduler(files: Files, ports: Ports) -> list[str]:
    return _delegating(files, "kube-scheduler", ports.scheduler, "scheduler")


def kwok(files: Files, ports: Ports) -> list[str]:
    del ports  # kwok needs no port: --server-address is left empty, so it serves nothing
    return [
        str(files.bins["kwok"]),
        f"--kubeconfig={files.kubeconfig}",
        f"--config={files.stages}",
        "--manage-all-nodes=false",
        # Without a lease duration kwok keeps no node Lease, and its heartbeat-with-lease stage only
        # refreshes node status every ~10 minutes: the node controller then flaps the nodes NotReady
        # (marking every pod NotReady) about once a minute. 40 s is the kubelet's default lease.
        "--node-lease-duration-seconds=40",
        f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
        f"--cidr={POD_CIDR}",
    ]


def _node(
    name: str, ip: str, version: str, labels: dict[str, str], capacity: dict[str, str], taints: list[Any]
) -> dict[str, Any]:
    """A Node that kwok will manage; capacity and addresses are set at creation, as kwok's docs do."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **labels,
            },
        },
        "spec": {"taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": version},
        },
    }


def nodes(version: str = "") -> list[dict[str, Any]]:
    """One CPU node, and one GPU node labelled and tainted like a GPU-operator-managed pool node.

    `version` is the kubelet version the nodes report (the control plane's, as kubeadm keeps them).
    """
    cpu = _node(
        "kwok-cpu-0",
        "10.0.0.10",
        version,
        {"node.kubernetes.io/instance-type": "cpu-16x64"},
        {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"},
        [],
    )
    gpu = _node(
        "kwok-gpu-0",
        "10.0.0.20",
        version,
        {
            "node.kubernetes.io/instance-type": "gpu-l4x8",
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": GPU_PRODUCT,
            "nvidia.com/gpu.count": str(GPU_COUNT),
            "nvidia.com/gpu.memory": "23034",
        },
        {
            "cpu": "48",
            "memory": "192Gi",
            "pods": "110",
            "ephemeral-storage": "500Gi",
            "nvidia.com/gpu": str(GPU_COUNT),
        },
        [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    )
    return [cpu, gpu]
