"""A cluster for one test run: reuse a healthy one or start a private one (used by the root conftest.py).

Stdlib only and free of pytest, so other harnesses (benchmarks, e2e scripts) can use it too. It drives the
real `e2e/cluster` command in a subprocess, exactly as a person would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from clusterlib import nodeconfig, nodeimages, settings

CLUSTER_CMD = settings.E2E_DIR / "cluster"


@dataclass(frozen=True)
class Cluster:
    """A running local cluster: where its state and kubeconfig are, and the environment to reach it."""

    state_dir: Path
    kubeconfig: Path
    bin_dirs: list[Path]  # pinned kubectl, helm, kwok, etcd
    started_here: bool  # True when this session started it (and so must stop it)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) plus KUBECONFIG and PATH with the pinned tools first."""
        env = dict(os.environ if base is None else base)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = os.pathsep.join([*map(str, self.bin_dirs), env.get("PATH", "")])
        return env


def run(
    args: list[str], state_dir: Path | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `e2e/cluster ARGS`, optionally on another state dir; output captured."""
    env = dict(os.environ)
    if state_dir is not None:
        env["FLOTILLA_CLUSTER_DIR"] = str(state_dir)
    return subprocess.run(
        [str(CLUSTER_CMD), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _handle(state_dir: Path, started: bool) -> Cluster:
    cfg = settings.load({**os.environ, "FLOTILLA_CLUSTER_DIR": str(state_dir)})
    return Cluster(
        state_dir=cfg.state_dir, kubeconfig=cfg.kubeconfig, bin_dirs=cfg.bin_dirs, started_here=started
    )


def reusable() -> bool:
    """A healthy cluster runs in the default state dir and reuse is allowed (not in CI, unless asked)."""
    default = "0" if os.environ.get("CI") else "1"
    if os.environ.get("FLOTILLA_CLUSTER_REUSE", default) == "0":
        return False
    return run(["status", "--quiet"]).returncode == 0


def start(up_timeout: float = 240) -> Cluster:
    """Reuse the default cluster when `reusable()`, else start a private one; ClusterError if it cannot."""
    if reusable():
        return _handle(settings.load().state_dir, started=False)
    # A private parent dir, so the state dir's sibling lock file goes away with it in stop().
    state_dir = Path(tempfile.mkdtemp(prefix="flotilla-cluster-")) / "state"
    done = run(["up", "--timeout", str(up_timeout)], state_dir)
    if done.returncode != 0:
        logs = state_dir / "logs"
        where = f"; component logs in {logs}" if logs.is_dir() else ""
        if not where:
            shutil.rmtree(state_dir.parent, ignore_errors=True)
        raise settings.ClusterError(
            f"the local cluster did not start (e2e/cluster up exit {done.returncode}{where}):\n"
            f"{done.stdout}{done.stderr}"
        )
    return _handle(state_dir, started=True)


@dataclass(frozen=True)
class RealNode:
    """The real worker node of a cluster: how to schedule onto it and where its containerd listens."""

    name: str
    containerd_socket: Path
    toleration: dict[str, str]  # tolerates the node's NoSchedule taint
    node_selector: dict[str, str]
    images: dict[str, str]  # program -> image ref imported into its containerd (pause, echo)


def add_real_node(cluster: Cluster, up_timeout: float = 240) -> RealNode:
    """`e2e/cluster up --real-node` on the cluster's state dir (adds the node to a running cluster)."""
    done = run(["up", "--real-node", "--timeout", str(up_timeout)], cluster.state_dir)
    if done.returncode != 0:
        raise settings.ClusterError(
            f"the real node did not start (e2e/cluster up --real-node exit {done.returncode}; logs in "
            f"{cluster.state_dir / 'logs'}):\n{done.stdout}{done.stderr}"
        )
    files = nodeconfig.NodeFiles(state_dir=cluster.state_dir, cache_dir=settings.load().cache_dir)
    return RealNode(
        name=nodeconfig.NODE_NAME,
        containerd_socket=files.containerd_socket,
        toleration={"key": nodeconfig.TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
        node_selector={"kubernetes.io/hostname": nodeconfig.NODE_NAME},
        images={image.program: image.ref for image in nodeimages.IMAGES},
    )


def stop(cluster: Cluster) -> None:
    """Stop the cluster if this session started it; leave a reused one running."""
    if cluster.started_here:
        run(["down"], cluster.state_dir)
        shutil.rmtree(cluster.state_dir.parent, ignore_errors=True)
