"""The opt-in real worker node `real-0` (`e2e/cluster up --real-node`): containerd + runc + CNI bridge,
kubelet and kube-proxy running for real beside the kwok nodes, and its teardown in `down`.

Machine-wide resources (the bridge, the pod CIDR, iptables chains, containerd's image store) allow one real
node per machine; `real-node.owner` in the cache names the state dir that has it. Teardown stops what was
started by recorded PID and removes only what the node created: pods are drained first so the kubelet
tears their sandboxes down through CNI, leftover tasks are killed through our containerd socket, then
`kube-proxy --cleanup` removes its chains and the bridge and the unreachable route go.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from clusterlib import keys, kubeapi, nodeconfig, nodeimages, processes, settings, states

COMPONENTS = ("apiserver-relay", "coredns", "containerd", "kubelet", "kube-proxy")
OWNER_FILE = "real-node.owner"
CNI_PLUGINS = ("bridge", "host-local", "loopback")
# Chains the kubelet creates itself (kube-proxy --cleanup removes only its own).
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT", "KUBE-PROXY-CANARY")
Probe = Callable[[], tuple[bool, str]]


def present(state: states.State) -> bool:
    return any(p.name in COMPONENTS for p in state.procs)


def files_of(cfg: settings.Settings) -> nodeconfig.NodeFiles:
    return nodeconfig.NodeFiles(state_dir=cfg.state_dir, cache_dir=cfg.cache_dir)


def _run(cmd: list[str], what: str, check: bool = True) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if check and done.returncode != 0:
        raise settings.ClusterError(f"{what} failed: {' '.join(cmd)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def check_prerequisites() -> None:
    """Root, and the Debian packages the node runs on; one message listing everything missing."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the real node needs root (network bridge, cgroups, iptables)")
    for tool in ("containerd", "ctr", "runc", "iptables", "ip"):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is not on PATH")
    problems += [
        f"CNI plugin {nodeconfig.CNI_PLUGIN_DIR / p} is missing"
        for p in CNI_PLUGINS
        if not (nodeconfig.CNI_PLUGIN_DIR / p).exists()
    ]
    if problems:
        raise settings.ClusterError(
            "cannot start the real node: " + "; ".join(problems) + "\nhint: apt-get install containerd runc "
            "containernetworking-plugins iptables iproute2"
        )


def ensure_available(cfg: settings.Settings) -> None:
    """Refuse (before anything starts) when another live cluster has the machine's real node."""
    owner = cfg.cache_dir / OWNER_FILE
    other = owner.read_text().strip() if owner.exists() else ""
    if other and other != str(cfg.state_dir):
        state = states.read(settings.load({**os.environ, "FLOTILLA_CLUSTER_DIR": other}))
        if state is not None and any(processes.alive(p) for p in state.procs if p.name in COMPONENTS):
            raise settings.ClusterError(
                f"the real node runs for the cluster in {other} (one per machine); stop it first with "
                f"FLOTILLA_CLUSTER_DIR={other} e2e/cluster down"
            )


def claim(cfg: settings.Settings) -> None:
    """Record this state dir as the machine's real node."""
    ensure_available(cfg)
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    (cfg.cache_dir / OWNER_FILE).write_text(f"{cfg.state_dir}\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _setup_network() -> None:
    """Our bridge with the node IP (before any pod, so the relay can bind to it), and kwok's fake pod
    CIDR routed as unreachable: connections to simulated pods fail at once and never leave the machine."""
    links = _run(["ip", "-o", "link", "show"], "listing links")
    if f": {nodeconfig.BRIDGE}:" not in links:
        _run(["ip", "link", "add", nodeconfig.BRIDGE, "type", "bridge"], "creating the bridge")
        _run(
            ["ip", "addr", "add", f"{nodeconfig.NODE_IP}/24", "dev", nodeconfig.BRIDGE],
            "addressing the bridge",
        )
    _run(["ip", "link", "set", nodeconfig.BRIDGE, "up"], "bringing the bridge up")
    _run(["ip", "route", "replace", "unreachable", nodeconfig.KWOK_POD_CIDR], "routing kwok's pod CIDR")


def _tcp_ok(host: str, port: int) -> Probe:
    def probe() -> tuple[bool, str]:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True, ""
        except OSError as exc:
            return False, f"{host}:{port}: {exc}"

    return probe


def _ctr(files: nodeconfig.NodeFiles, *args: str) -> list[str]:
    return ["ctr", "--address", str(files.containerd_socket), "--namespace", "k8s.io", *args]


def _import_images(files: nodeconfig.NodeFiles, cfg: settings.Settings) -> None:
    """Import our images into containerd's k8s.io namespace unless present (the store persists)."""
    listed = set(_run(_ctr(files, "images", "ls", "-q"), "listing images").split())
    for image in nodeimages.IMAGES:
        if image.ref not in listed:
            archive = nodeimages.archive_path(cfg, image)
            _run(
                _ctr(files, "images", "import", "--platform", "linux/amd64", str(archive)),
                f"importing {image.ref}",
            )


def node_ready(client: kubeapi.Client) -> tuple[bool, str]:
    try:
        node = client.get(f"/api/v1/nodes/{nodeconfig.NODE_NAME}")
    except kubeapi.Unreachable as exc:
        return False, str(exc)
    if node is None:
        return False, f"node {nodeconfig.NODE_NAME} not registered yet"
    conditions = {c["type"]: c for c in node.get("status", {}).get("conditions", [])}
    ready = conditions.get("Ready", {})
    return ready.get(
        "status"
    ) == "True", f"{nodeconfig.NODE_NAME} Ready={ready.get('status')}: {ready.get('message')}"


def write_configs(
    cfg: settings.Settings, state: states.State, node_ports: nodeconfig.NodePorts, tainted: bool
) -> None:
    files = files_of(cfg)
    for folder in (files.root, files.cni_conf_dir, files.kubelet_dir, files.containerd_root):
        folder.mkdir(parents=True, exist_ok=True)
    pki = cfg.state_dir / "pki"
    if not (pki / "node.token").exists():
        raise settings.ClusterError(
            "this cluster was started without the real node's credentials (by an older e2e/cluster); "
            "restart it: e2e/cluster down && e2e/cluster up --real-node"
        )
    ca_data = base64.b64encode((pki / "apiserver" / "apiserver.crt").read_bytes()).decode()
    for name, (user, _) in keys.NODE_TOKENS.items():
        config = nodeconfig.kubeconfig(state.server, ca_data, user, (pki / name).read_text().strip())
        kubeconfig_name = "kubelet.kubeconfig" if name == "node.token" else "kube-proxy.kubeconfig"
        keys.write_private(files.config(kubeconfig_name), nodeconfig.to_json(config))
    files.config("Corefile").write_text(nodeconfig.corefile(cfg.kubeconfig, node_ports))
    files.containerd_config.write_text(nodeconfig.containerd_toml(files, nodeimages.PAUSE.ref))
    (files.cni_conf_dir / "10-flotilla.conflist").write_text(
        nodeconfig.to_json(nodeconfig.cni_conflist(files))
    )
    files.config("kubelet.json").write_text(
        nodeconfig.to_json(nodeconfig.kubelet_config(files, node_ports, tainted))
    )
    proxy = nodeconfig.kube_proxy_config(files.config("kube-proxy.kubeconfig"), node_ports)
    files.config("kube-proxy.json").write_text(nodeconfig.to_json(proxy))


def start(
    cfg: settings.Settings,
    state: states.State,
    spawn: Callable[[str, list[str]], None],
    wait: Callable[[str, Probe], None],
    tainted: bool = True,
) -> None:
    """Start the node's components in order with the starter's `spawn`/`wait` (which name a failure).

    `tainted=False` (the demo): no taint on real-0; the kwok CPU node gets `SIMULATED_TAINT` instead.
    """
    check_prerequisites()
    claim(cfg)
    files = files_of(cfg)
    api_port = state.ports["apiserver"]
    node_ports = nodeconfig.NodePorts(
        kubelet=_free_port(), kubelet_healthz=_free_port(), proxy_healthz=_free_port(),
        proxy_metrics=_free_port(), relay=api_port, dns_health=_free_port(), dns_ready=_free_port(),
    )  # fmt: skip
    state.ports.update({f"node_{k}": v for k, v in vars(node_ports).items()})
    write_configs(cfg, state, node_ports, tainted)
    _setup_network()
    client = kubeapi.Client(state.server, state.token)
    relay = [
        sys.executable,
        str(Path(__file__).with_name("relay.py")),
        nodeconfig.NODE_IP,
        str(api_port),
        "127.0.0.1",
        str(api_port),
    ]
    spawn("apiserver-relay", relay)
    wait("apiserver-relay", _tcp_ok(nodeconfig.NODE_IP, api_port))
    client.create(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        nodeconfig.apiserver_endpoint_slice(api_port),
    )
    client.create("/api/v1/namespaces/kube-system/services", nodeconfig.dns_service())
    client.create(
        "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices", nodeconfig.dns_endpoint_slice()
    )
    spawn("coredns", nodeconfig.coredns(cfg.binary("coredns"), files))
    spawn("containerd", nodeconfig.containerd(files))
    wait("containerd", lambda: (files.containerd_socket.exists(), f"no socket {files.containerd_socket} yet"))
    _import_images(files, cfg)
    spawn("kubelet", nodeconfig.kubelet(cfg.binary("kubelet"), files))
    spawn("kube-proxy", nodeconfig.kube_proxy(cfg.binary("kube-proxy"), files))
    wait("kubelet", kubeapi.http_ok(f"http://127.0.0.1:{node_ports.kubelet_healthz}/healthz"))
    wait("kubelet", lambda: node_ready(client))
    wait("kube-proxy", kubeapi.http_ok(f"http://127.0.0.1:{node_ports.proxy_healthz}/healthz"))
    wait("coredns", kubeapi.http_ok(f"http://127.0.0.1:{node_ports.dns_ready}/ready"))
    if not tainted:
        spec = {"spec": {"taints": [nodeconfig.SIMULATED_TAINT]}}
        client.send("PATCH", f"/api/v1/nodes/{nodeconfig.KWOK_CPU_NODE}", spec, patch=True)


def _drain(client: kubeapi.Client, timeout: float = 40.0) -> None:
    """Cordon the node and delete its pods, so the kubelet stops their containers and CNI tears down."""
    node_path = f"/api/v1/nodes/{nodeconfig.NODE_NAME}"
    try:
        client.send("PATCH", node_path, {"spec": {"unschedulable": True}}, patch=True)
        selector = f"?fieldSelector=spec.nodeName={nodeconfig.NODE_NAME}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = (client.get(f"/api/v1/pods{selector}") or {}).get("items", [])
            if not pods:
                return
            for pod in pods:
                meta = pod["metadata"]
                if not meta.get("deletionTimestamp"):
                    path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
                    client.send("DELETE", path, {"gracePeriodSeconds": 1})
            time.sleep(0.5)
    except kubeapi.Unreachable:
        return  # the apiserver is gone: fall back to killing tasks through containerd


def _kill_tasks(files: nodeconfig.NodeFiles) -> None:
    """Kill and delete whatever containers are left in our containerd (the shims exit with them)."""
    if not files.containerd_socket.exists():
        return
    tasks = _run(_ctr(files, "tasks", "ls", "-q"), "listing tasks", check=False).split()
    for task in tasks:
        _run(_ctr(files, "tasks", "kill", "--all", "--signal", "SIGKILL", task), "kill", check=False)
    for task in tasks:
        _run(_ctr(files, "tasks", "delete", "--force", task), "delete task", check=False)
    for container in _run(_ctr(files, "containers", "ls", "-q"), "listing containers", check=False).split():
        _run(_ctr(files, "containers", "delete", container), "delete container", check=False)


def _unmount_under(root: Path) -> None:
    """Lazily unmount anything left mounted under `root` (pod volumes, rootfs), deepest first."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    ours = sorted((m for m in mounts if m == str(root) or m.startswith(f"{root}/")), key=len, reverse=True)
    for mount in ours:
        _run(["umount", "-l", mount], "umount", check=False)


def _clean_iptables(kube_proxy: Path) -> None:
    """kube-proxy's own cleanup, then the kubelet's canary chains (Kubernetes names, ours on this machine)."""
    if kube_proxy.exists():
        _run([str(kube_proxy), "--cleanup"], "kube-proxy --cleanup", check=False)
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("mangle", "nat", "filter"):
            saved = _run([f"{tool}-save", "-t", table], "iptables-save", check=False).splitlines()
            for line in saved:  # jumps into the chains first, or they cannot be deleted
                words = shlex.split(line)
                if words[:1] == ["-A"] and words[-2:-1] == ["-j"] and words[-1] in KUBELET_CHAINS:
                    _run([tool, "-t", table, "-D", *words[1:]], "delete jump", check=False)
            for chain in KUBELET_CHAINS:
                if f":{chain} " in "\n".join(saved):
                    _run([tool, "-t", table, "-F", chain], "flush", check=False)
                    _run([tool, "-t", table, "-X", chain], "delete chain", check=False)


def _remove_cgroups(root: Path = Path("/sys/fs/cgroup")) -> None:
    """Remove the kubelet's (now empty) `kubepods` cgroups in every v1 hierarchy, deepest first."""
    for top in root.glob("*/kubepods"):
        for folder in sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def stop(cfg: settings.Settings, state: states.State) -> list[str]:
    """Stop the node's components and remove what they created; returns names that needed SIGKILL."""
    files = files_of(cfg)
    owner = cfg.cache_dir / OWNER_FILE
    ours = owner.exists() and owner.read_text().strip() == str(cfg.state_dir)
    if not present(state) and not ours:
        return []  # refused before claiming (another cluster has the node): touch nothing of theirs
    by_name = {p.name: p for p in state.procs if p.name in COMPONENTS}
    if "kubelet" in by_name and processes.alive(by_name["kubelet"]):
        _drain(kubeapi.Client(state.server, state.token))
    killed = processes.stop([by_name[n] for n in ("kubelet", "kube-proxy") if n in by_name])
    _kill_tasks(files)
    killed += processes.stop(
        [by_name[n] for n in ("coredns", "apiserver-relay", "containerd") if n in by_name]
    )
    _clean_iptables(cfg.binary("kube-proxy"))
    _unmount_under(files.root)
    _remove_cgroups()
    _run(["ip", "link", "del", nodeconfig.BRIDGE], "deleting the bridge", check=False)
    _run(["ip", "route", "del", "unreachable", nodeconfig.KWOK_POD_CIDR], "removing the route", check=False)
    if ours:
        owner.unlink()
    state.procs = [p for p in state.procs if p.name not in COMPONENTS]
    return killed
