"""Faults and bad input of `e2e/cluster`: already up, port in use, a dying component, down on nothing.

Each fault runs `e2e/cluster` in its own state dir, so the session's cluster is never disturbed (except
`up` on it, which must start nothing).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterlib import sessions
from clusterlib.sessions import CLUSTER_CMD, Cluster

pytestmark = pytest.mark.cluster


def _cluster(state_dir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return sessions.run(list(args), state_dir, timeout)


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose arguments contain `text` (our components name the state dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A private state dir; whatever a test leaves running there is stopped afterwards."""
    path = tmp_path / "state"
    yield path
    _cluster(path, "down")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A 127.0.0.1 port held by a listening socket for the test's duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_up_when_already_up_says_so_and_starts_nothing(cluster: Cluster) -> None:
    record = cluster.state_dir / "cluster.json"
    before = json.loads(record.read_text())["procs"]
    done = _cluster(cluster.state_dir, "up")
    assert done.returncode == 0, done.stderr
    assert "already up" in done.stdout
    assert json.loads(record.read_text())["procs"] == before
    status = _cluster(cluster.state_dir, "status")
    assert status.returncode == 0
    assert "Ready" in status.stdout


def test_down_when_nothing_runs_is_no_error(state_dir: Path) -> None:
    done = _cluster(state_dir, "down")
    assert done.returncode == 0
    assert "nothing to stop" in done.stdout
    assert _cluster(state_dir, "status").returncode == 3


@pytest.mark.parametrize(
    ("flag", "component"), [("--etcd-port", "etcd"), ("--apiserver-port", "kube-apiserver")]
)
def test_port_in_use_names_component_and_leaves_nothing_running(
    state_dir: Path, busy_port: int, flag: str, component: str
) -> None:
    done = _cluster(state_dir, "up", "--no-build", flag, str(busy_port))
    assert done.returncode == 1
    assert f"{component} exited during start" in done.stderr
    assert "address already in use" in done.stderr  # from the component's own log lines
    assert "nothing is left running" in done.stderr
    assert "Traceback" not in done.stderr
    assert _processes_mentioning(str(state_dir)) == []
    assert _cluster(state_dir, "status").returncode == 3


def test_component_dying_on_start_is_named_with_its_log(state_dir: Path) -> None:
    # The scheduler starts after etcd and the apiserver, so this also proves those get stopped.
    done = _cluster(state_dir, "up", "--no-build", "--component-arg", "kube-scheduler=--no-such-flag")
    assert done.returncode == 1
    assert "kube-scheduler exited during start" in done.stderr
    assert "unknown flag: --no-such-flag" in done.stderr
    assert (state_dir / "logs" / "kube-scheduler.log").exists()  # logs are kept for reading
    assert _processes_mentioning(str(state_dir)) == []
    assert _cluster(state_dir, "status").returncode == 3


def test_bad_component_arg_is_a_usage_error(state_dir: Path) -> None:
    done = _cluster(state_dir, "up", "--component-arg", "kube-dns=--v=2")
    assert done.returncode == 2
    assert "COMPONENT one of" in done.stderr
    assert "Traceback" not in done.stderr


def test_env_exports_a_working_kubeconfig_and_tools(cluster: Cluster) -> None:
    script = 'eval "$("$0" env)" && kubectl get nodes -o name && helm version --short'
    env = {**os.environ, "FLOTILLA_CLUSTER_DIR": str(cluster.state_dir), "PATH": "/usr/bin:/bin"}
    env.pop("KUBECONFIG", None)
    done = subprocess.run(
        ["bash", "-c", script, str(CLUSTER_CMD)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["node/kwok-cpu-0", "node/kwok-gpu-0"]


def test_build_skips_what_is_built(cluster: Cluster) -> None:
    done = _cluster(cluster.state_dir, "build", timeout=60)
    assert done.returncode == 0, done.stderr
    for target in ("kubernetes", "etcd", "kwok", "helm"):
        assert f"{target}: cached" in done.stdout


def test_component_not_ready_in_time_is_named_and_stopped(state_dir: Path) -> None:
    # A deadline the cluster cannot meet (it comes up in about 3 s on a quiet machine; kube-apiserver alone
    # takes more than a second), so some component is named as the one not ready.
    done = _cluster(state_dir, "up", "--no-build", "--timeout", "0.05")
    assert done.returncode == 1, done.stdout
    assert re.search(r"^e2e/cluster up: [a-z-]+ not ready after 0\.05 s \(", done.stderr), done.stderr
    assert "nothing is left running" in done.stderr
    assert _processes_mentioning(str(state_dir)) == []


def test_up_restarts_a_cluster_whose_component_died(state_dir: Path) -> None:
    assert _cluster(state_dir, "up", "--no-build").returncode == 0
    record = json.loads((state_dir / "cluster.json").read_text())
    kwok = next(p for p in record["procs"] if p["name"] == "kwok")
    os.kill(kwok["pid"], signal.SIGKILL)
    status = _cluster(state_dir, "status")
    assert status.returncode == 1
    assert "kwok not running" in status.stdout
    again = _cluster(state_dir, "up", "--no-build")
    assert again.returncode == 0, again.stderr
    assert "kwok not running" in again.stderr  # it says what it found before starting fresh
    assert _cluster(state_dir, "status").returncode == 0
    # The survivors of the broken cluster were stopped, not left beside the new one.
    assert [p["pid"] for p in record["procs"] if Path(f"/proc/{p['pid']}/cmdline").exists()] == []
    assert _cluster(state_dir, "down").returncode == 0
    assert _processes_mentioning(str(state_dir)) == []
