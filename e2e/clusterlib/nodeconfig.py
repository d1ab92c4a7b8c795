"""Pure builders for the opt-in real node `real-0`: config files and command lines (no I/O here).

The node is one per machine: its bridge, pod CIDR, iptables chains and containerd root are machine-wide,
so their names are fixed here. Pod IPs come from 10.245.0.0/24 on the bridge `flotilla0`, whose gateway
address 10.245.0.1 is also the node IP (the kubelet refuses a loopback node IP); kwok's fake pod IPs stay
in 10.244.0.0/16, which `up` routes as unreachable so connections to simulated pods fail fast and never
leave the machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "real-0"
BRIDGE = "flotilla0"
POD_CIDR = "10.245.0.0/24"
NODE_IP = "10.245.0.1"
DNS_SERVICE_IP = "10.96.0.10"  # the `kube-dns` Service, as kubeadm numbers it in 10.96.0.0/16
CLUSTER_DOMAIN = "cluster.local"
KWOK_POD_CIDR = "10.244.0.0/16"  # kwok's --cidr (manifests.POD_CIDR)
TAINT_KEY = "flotilla.dev/real-node"
# With `--real-node-untainted` (the demo) the kwok CPU node gets this taint instead, so every CPU pod
# that tolerates neither lands on the real node and runs for real; GPU pods keep the kwok GPU node.
SIMULATED_TAINT = {"key": "flotilla.dev/simulated", "value": "true", "effect": "NoSchedule"}
KWOK_CPU_NODE = "kwok-cpu-0"
NODE_LABELS = {"flotilla.dev/node": "real", "node.kubernetes.io/instance-type": "local"}
NODE_USER = f"system:node:{NODE_NAME}"  # what the Node authorizer expects of a kubelet
PROXY_USER = "system:kube-proxy"  # bound to system:node-proxier by the default RBAC policy
CNI_PLUGIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
MANAGED_BY = "e2e-cluster.flotilla.dev"


@dataclass(frozen=True)
class NodePorts:
    """Ports of the node's components: kubelet API on the node IP, health/metrics on 127.0.0.1."""

    kubelet: int
    kubelet_healthz: int
    proxy_healthz: int
    proxy_metrics: int
    relay: int  # the apiserver relay on NODE_IP: the same port as the apiserver's
    dns_health: int
    dns_ready: int


@dataclass(frozen=True)
class NodeFiles:
    """Where the node keeps its files: runtime state under the cluster state dir, images in the cache."""

    state_dir: Path
    cache_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "node"

    @property
    def containerd_root(self) -> Path:
        """Images and snapshots persist across `down`/`up` (as on a real node), so imports are kept."""
        return self.cache_dir / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    def config(self, name: str) -> Path:
        return self.root / name


def containerd_toml(files: NodeFiles, sandbox_image: str) -> str:
    """containerd 1.6 config (version 2): own root/state/socket, cgroupfs runc, our CNI dir, pause image."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{files.containerd_root}"
state = "{files.root / "containerd" / "state"}"

[grpc]
  address = "{files.containerd_socket}"

[ttrpc]
  address = "{files.root / "containerd" / "containerd.sock.ttrpc"}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{files.containerd_root / "opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # This VM withholds CAP_SYS_RESOURCE even from root, so runc cannot lower oom_score_adj (the kubelet
  # asks -998 for sandboxes): clamp requested scores to [containerd's own, 1000] instead of failing.
  restrict_oom_score_adj = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_PLUGIN_DIR}"
  conf_dir = "{files.cni_conf_dir}"
  max_conf_num = 1
"""


def cni_conflist(files: NodeFiles) -> dict[str, Any]:
    """Bridge + host-local on our own bridge. No ipMasq: pods talk only to this machine, so no NAT rules
    (and no iptables chains of the CNI plugins to clean up); kube-proxy masquerades Service hairpins."""
    return {
        "cniVersion": "1.0.0",
        "name": "flotilla",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(files.root / "cni" / "ipam"),
                },
            }
        ],
    }


def kubeconfig(server: str, ca_data: str, user: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "flotilla", "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "flotilla", "context": {"cluster": "flotilla", "user": user}}],
        "current-context": "flotilla",
    }


def kubelet_config(files: NodeFiles, ports: NodePorts, tainted: bool = True) -> dict[str, Any]:
    """KubeletConfiguration for this VM: cgroup v1 with cgroupfs, swap tolerated, small eviction margins."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,  # the API the apiserver calls for logs/exec, on the bridge only
        "port": ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.kubelet_healthz,
        # The apiserver has no kubelet client certificate: it calls the kubelet anonymously, which is
        # acceptable only because the kubelet listens on the machine-local bridge address.
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # this VM has cgroup v1, which the kubelet refuses by default since 1.35
        "failSwapOn": False,
        "oomScoreAdj": 0,  # no CAP_SYS_RESOURCE here: the kubelet's default -999 would be refused
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "containerRuntimeEndpoint": f"unix://{files.containerd_socket}",
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]
        if tainted
        else [],
        "volumePluginDir": str(files.kubelet_dir / "volume-plugins"),
        "resolvConf": "/etc/resolv.conf",
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "maxPods": 50,
        "serializeImagePulls": False,
        "nodeStatusReportFrequency": "10s",
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        # Image garbage collection off (100 disables it): images reach this node by `ctr import`, with no
        # registry to pull them again, so one collected while no pod used it was lost, and the next pod
        # stayed in ErrImageNeverPull. The machine's shared disk often sits above the default 85%.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
    }


def kube_proxy_config(kubeconfig_path: Path, ports: NodePorts) -> dict[str, Any]:
    """iptables mode; NodePorts only on the node (bridge) IP; conntrack sysctls left as they are."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "healthzBindAddress": f"127.0.0.1:{ports.proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{ports.proxy_metrics}",
        "nodePortAddresses": [f"{NODE_IP}/32"],
        "detectLocalMode": "BridgeInterface",
        "detectLocal": {"bridgeInterface": BRIDGE},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def kubelet(bin_path: Path, files: NodeFiles) -> list[str]:
    labels = ",".join(f"{k}={v}" for k, v in NODE_LABELS.items())
    return [
        str(bin_path),
        f"--config={files.config('kubelet.json')}",
        f"--kubeconfig={files.config('kubelet.kubeconfig')}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        f"--root-dir={files.kubelet_dir}",
        f"--cert-dir={files.kubelet_dir / 'pki'}",
        f"--node-labels={labels}",
        "--v=1",
    ]


def kube_proxy(bin_path: Path, files: NodeFiles) -> list[str]:
    return [str(bin_path), f"--config={files.config('kube-proxy.json')}", "--v=1"]


def containerd(files: NodeFiles) -> list[str]:
    return ["containerd", f"--config={files.containerd_config}"]


def apiserver_endpoint_slice(port: int) -> dict[str, Any]:
    """Endpoints of the `kubernetes` Service: the relay on the node IP (the apiserver keeps 127.0.0.1,
    which endpoints may not hold; --endpoint-reconciler-type=none leaves this object to us)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


def corefile(admin_kubeconfig: Path, ports: NodePorts) -> str:
    """CoreDNS on the node IP only: Service/pod names from the API, everything else to the host's resolver."""
    return f""".:53 {{
    bind {NODE_IP}
    ready 127.0.0.1:{ports.dns_ready}
    health 127.0.0.1:{ports.dns_health}
    errors
    cache 30
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {admin_kubeconfig} flotilla
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
}}
"""


def dns_service() -> dict[str, Any]:
    """`kube-system/kube-dns` without a selector: its EndpointSlice (`dns_endpoint_slice`) is ours."""
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"clusterIP": DNS_SERVICE_IP, "ports": ports},
    }


def dns_endpoint_slice() -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "labels": {
                "kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
        "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ],
    }


def coredns(bin_path: Path, files: NodeFiles) -> list[str]:
    return [str(bin_path), "-conf", str(files.config("Corefile"))]


def to_json(obj: dict[str, Any]) -> str:
    """Kubernetes config files are YAML, of which JSON is a subset: the stdlib writes them."""
    return json.dumps(obj, indent=2) + "\n"
