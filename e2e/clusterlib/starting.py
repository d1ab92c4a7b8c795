"""`e2e/cluster up`: start etcd, kube-apiserver, controller-manager, scheduler and kwok; create the nodes.

Each component is checked while `up` waits: if one exits, or is not ready in time, `up` names it, prints
the last lines of its log, stops everything it started and exits non-zero. A fresh cluster (empty etcd)
is started every time; `up` on a healthy cluster only says so.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from clusterlib import (
    building,
    keys,
    kubeapi,
    manifests,
    monitoring,
    nodeconfig,
    nodeimages,
    processes,
    realnode,
    settings,
    states,
)

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
NODE_NAMES = tuple(node["metadata"]["name"] for node in manifests.nodes())
_POLL = 0.1


@dataclass(frozen=True)
class UpOptions:
    """What `up` may be told: ports to pin (0 = a free one), extra flags per component, the time budget."""

    timeout: float = 120.0
    etcd_port: int = 0
    apiserver_port: int = 0
    extra_args: dict[str, list[str]] = field(default_factory=dict)
    build: bool = True
    real_node: bool = False  # also start the real worker node real-0 (realnode.py)
    untainted: bool = False  # real-0 without its taint, kwok-cpu-0 tainted instead (the demo)
    prometheus: bool = False  # also start Prometheus on the chart's monitors (monitoring.py)


def _free_ports(count: int) -> list[int]:
    """Ports the kernel considers free now (all sockets held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _pick_ports(options: UpOptions) -> manifests.Ports:
    etcd, peer, api, kcm, sched = _free_ports(5)
    return manifests.Ports(
        etcd=options.etcd_port or etcd,
        etcd_peer=peer,
        apiserver=options.apiserver_port or api,
        controller_manager=kcm,
        scheduler=sched,
    )


def nodes_ready(client: kubeapi.Client) -> tuple[bool, str]:
    """True when every fake node is Ready and the node controller has lifted its not-ready taints."""
    try:
        listing = client.get("/api/v1/nodes")
    except kubeapi.Unreachable as exc:
        return False, str(exc)
    waiting = []
    found = {item["metadata"]["name"]: item for item in (listing or {}).get("items", [])}
    for name in NODE_NAMES:
        node = found.get(name)
        conditions = {c["type"]: c["status"] for c in (node or {}).get("status", {}).get("conditions", [])}
        taints = [t["key"] for t in (node or {}).get("spec", {}).get("taints", []) or []]
        if node is None:
            waiting.append(f"{name} missing")
        elif conditions.get("Ready") != "True":
            waiting.append(f"{name} not Ready")
        elif any(key.startswith("node.kubernetes.io/") for key in taints):
            waiting.append(f"{name} still tainted {taints}")
    return not waiting, "; ".join(waiting)


class _Starter:
    """Starts the components in order, recording each in the state file as soon as it runs."""

    def __init__(self, cfg: settings.Settings, options: UpOptions) -> None:
        self.cfg = cfg
        self.options = options
        self.started = time.monotonic()
        self.deadline = self.started + options.timeout
        self.ready_at: dict[str, float] = {}  # seconds from start until each wait succeeded
        self.popens: dict[str, subprocess.Popen[bytes]] = {}
        self.state = states.State(server="", token="", ports={})

    def _start(self, name: str, cmd: list[str]) -> None:
        cmd = cmd + self.options.extra_args.get(name, [])
        proc, popen = processes.spawn(name, cmd, self.cfg.state_dir / "logs" / f"{name}.log")
        self.popens[name] = popen
        self.state.procs.append(proc)
        states.write(self.cfg, self.state)

    def _failure(self, name: str, headline: str) -> settings.ClusterError:
        log = self.cfg.state_dir / "logs" / f"{name}.log"
        text = processes.tail(log)
        hint = ""
        if "address already in use" in text:
            hint = "\nhint: a port it needs is taken by another process (see the log lines above)"
        return settings.ClusterError(f"{name} {headline}; last lines of {log}:\n{text}{hint}")

    def _check_running(self) -> None:
        for name, popen in self.popens.items():
            code = popen.poll()
            if code is not None:
                raise self._failure(name, f"exited during start (exit code {code})")

    def _wait(self, name: str, probe: Callable[[], tuple[bool, str]]) -> None:
        why = ""
        while True:
            self._check_running()
            ok, why = probe()
            if ok:
                self.ready_at[name] = time.monotonic() - self.started
                return
            if time.monotonic() > self.deadline:
                raise self._failure(name, f"not ready after {self.options.timeout:g} s ({why})")
            time.sleep(_POLL)

    def run(self) -> None:
        cfg = self.cfg
        ports = _pick_ports(self.options)
        bins = {name: cfg.binary(name) for name in COMPONENTS}
        files = manifests.Files(state_dir=cfg.state_dir, bins=bins, stages=cfg.stages_dir / "stages.yaml")
        token = keys.make_pki(files.pki)
        server = f"https://127.0.0.1:{ports.apiserver}"
        self.state = states.State(server=server, token=token, ports=asdict(ports))
        states.write(cfg, self.state)
        client = kubeapi.Client(server, token)

        self._start("etcd", manifests.etcd(files, ports))
        self._wait("etcd", kubeapi.http_ok(f"http://127.0.0.1:{ports.etcd}/health"))
        self._start("kube-apiserver", manifests.kube_apiserver(files, ports))
        self._wait("kube-apiserver", client.readyz)
        keys.write_kubeconfig(files.kubeconfig, server, files.apiserver_cert, token)
        for node in manifests.nodes(cfg.pins.kubernetes):
            client.create("/api/v1/nodes", node)
        self._start("kube-controller-manager", manifests.kube_controller_manager(files, ports))
        self._start("kube-scheduler", manifests.kube_scheduler(files, ports))
        self._start("kwok", manifests.kwok(files, ports))
        self._wait(
            "kube-controller-manager",
            kubeapi.http_ok(f"https://127.0.0.1:{ports.controller_manager}/healthz"),
        )
        self._wait("kube-scheduler", kubeapi.http_ok(f"https://127.0.0.1:{ports.scheduler}/healthz"))
        self._wait("kwok", lambda: nodes_ready(client))
        # Pods can be created in a namespace only once its `default` ServiceAccount exists.
        self._wait(
            "kube-controller-manager",
            lambda: _exists(client, "/api/v1/namespaces/default/serviceaccounts/default"),
        )
        if self.options.real_node:
            self.add_node()
        if self.options.prometheus:
            self.add_prometheus()

    def add_node(self) -> None:
        """Start the real node on the control plane recorded in `self.state`."""
        realnode.start(self.cfg, self.state, self._start, self._wait, tainted=not self.options.untainted)
        states.write(self.cfg, self.state)

    def add_prometheus(self) -> None:
        """Start Prometheus on the cluster recorded in `self.state`."""
        (port,) = _free_ports(1)
        monitoring.start(self.cfg, self.state, port, self._start, self._wait)
        states.write(self.cfg, self.state)

    def abort_prometheus(self) -> None:
        """Stop Prometheus only (a failed `up --with prometheus` on a running cluster keeps the rest)."""
        ours = [p for p in self.state.procs if p.name == monitoring.NAME]
        processes.stop(ours)
        self.state.procs = [p for p in self.state.procs if p.name != monitoring.NAME]
        self.state.ports.pop(monitoring.NAME, None)
        states.write(self.cfg, self.state)

    def abort(self) -> None:
        """Stop everything started; keep only the logs so the failure can be read."""
        if realnode.present(self.state):
            realnode.stop(self.cfg, self.state)
        processes.stop(self.state.procs)
        states.clear(self.cfg.state_dir, keep_logs=True)

    def abort_node(self) -> None:
        """Stop the node components only (a failed `up --real-node` on a running cluster keeps the rest)."""
        realnode.stop(self.cfg, self.state)
        states.write(self.cfg, self.state)


def _exists(client: kubeapi.Client, path: str) -> tuple[bool, str]:
    try:
        return client.get(path) is not None, f"{path} not found yet"
    except kubeapi.Unreachable as exc:
        return False, str(exc)


def healthy(state: states.State) -> tuple[bool, str]:
    """Whether a recorded cluster is fully running: every process alive and /readyz answering 200."""
    dead = [p.name for p in state.procs if not processes.alive(p)]
    if dead:
        return False, f"{', '.join(dead)} not running"
    names = {p.name for p in state.procs}
    if not names >= set(COMPONENTS) or (realnode.present(state) and not names >= set(realnode.COMPONENTS)):
        return False, "start did not finish"
    return kubeapi.Client(state.server, state.token).readyz()


def _ensure_built(cfg: settings.Settings, options: UpOptions) -> None:
    """Check the real node can start here (fail before anything starts), build what is missing."""
    if options.real_node:
        realnode.check_prerequisites()
        realnode.ensure_available(cfg)
    missing = building.missing_binaries(cfg, options.real_node)
    if missing:
        if not options.build:
            raise settings.ClusterError(
                f"not built: {', '.join(map(str, missing))}; run e2e/cluster build"
                + (" --real-node" if options.real_node else "")
            )
        building.build(cfg, real_node=options.real_node)
    if options.real_node:
        nodeimages.build(cfg)
    if options.prometheus and not all(cfg.binary(tool).exists() for tool in monitoring.TOOLS):
        if not options.build:
            raise settings.ClusterError("Prometheus is not built; run e2e/cluster build --only prometheus")
        building.build(cfg, only=monitoring.BUILD_TARGETS)


def _add_beside(
    cfg: settings.Settings,
    options: UpOptions,
    existing: states.State,
    add: Callable[[_Starter], None],
    abort: Callable[[_Starter], None],
    what: str,
) -> None:
    """Start one more part beside a running cluster; on failure stop that part (`what`), keep the rest."""
    starter = _Starter(cfg, options)
    starter.state = existing
    try:
        add(starter)
    except (settings.ClusterError, kubeapi.Unreachable, KeyboardInterrupt, OSError) as exc:
        abort(starter)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise settings.ClusterError(f"{exc}\nstopped {what}; the cluster still runs") from exc


def _add_node(cfg: settings.Settings, options: UpOptions, existing: states.State) -> int:
    """`up --real-node` on a running kwok-only cluster: start the node beside it, keep the rest running."""
    started = time.monotonic()
    _add_beside(cfg, options, existing, _Starter.add_node, _Starter.abort_node, "the real node's components")
    print(f"real node {nodeconfig.NODE_NAME} Ready in {time.monotonic() - started:.1f} s")
    print(
        f"  export KUBECONFIG={cfg.kubeconfig} CONTAINERD_ADDRESS={realnode.files_of(cfg).containerd_socket}"
    )
    return 0


def _add_prometheus(cfg: settings.Settings, options: UpOptions, existing: states.State) -> int:
    """`up --with prometheus` on a running cluster: start Prometheus beside it, keep the rest running."""
    _add_beside(cfg, options, existing, _Starter.add_prometheus, _Starter.abort_prometheus, "Prometheus")
    print(f"prometheus ready at {monitoring.url(existing)} (scraping the chart's monitors)")
    return 0


def up(cfg: settings.Settings, options: UpOptions) -> int:
    with states.locked(cfg):
        existing = states.read(cfg)
        if existing is not None:
            ok, why = healthy(existing)
            add_node = options.real_node and not realnode.present(existing)
            add_prometheus = options.prometheus and not monitoring.present(existing)
            if ok and not add_node and not add_prometheus:
                print(f"cluster already up at {existing.server} (state {cfg.state_dir}); nothing started")
                print(f"  export KUBECONFIG={cfg.kubeconfig}")
                return 0
            if ok:
                _ensure_built(cfg, options)
                done = _add_node(cfg, options, existing) if add_node else 0
                return _add_prometheus(cfg, options, existing) if add_prometheus else done
            print(f"found a broken cluster in {cfg.state_dir} ({why}); stopping it", file=sys.stderr)
            if realnode.present(existing):
                realnode.stop(cfg, existing)
            processes.stop(existing.procs)
        _ensure_built(cfg, options)
        states.clear(cfg.state_dir, keep_logs=False)
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        starter = _Starter(cfg, options)
        try:
            starter.run()
        except (settings.ClusterError, kubeapi.Unreachable, KeyboardInterrupt, OSError) as exc:
            starter.abort()
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise settings.ClusterError(
                f"{exc}\nstopped everything it had started; nothing is left running"
            ) from exc
    took = time.monotonic() - started
    names = [*NODE_NAMES, nodeconfig.NODE_NAME] if options.real_node else NODE_NAMES
    print(f"cluster up in {took:.1f} s: {starter.state.server}, nodes {', '.join(names)} Ready")
    marks = ", ".join(f"{name} {at:.1f}" for name, at in starter.ready_at.items())
    print(f"  ready at (s): {marks}")
    if options.prometheus:
        print(f"  prometheus: {monitoring.url(starter.state)} (scraping the chart's monitors)")
    print(f'  export KUBECONFIG={cfg.kubeconfig}    # or: eval "$(e2e/cluster env)"')
    return 0
