"""`e2e/cluster up --with prometheus`: the built Prometheus starts with the cluster (or beside a running
one), discovers model pods through the chart's PodMonitor, and `down` stops it.

Each test runs `e2e/cluster` in its own state dir (a private cluster, ~5 s to start), so the session's
cluster is never disturbed. `--no-build`: a missing Prometheus fails the test with `up`'s message
(`e2e/cluster build --only prometheus`) instead of building it inside the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from clusterlib import sessions, settings

pytestmark = pytest.mark.cluster

JOBS = [
    "servicemonitor/flotilla-system/flotilla-routers/0",
    "servicemonitor/flotilla-system/flotilla-operator/0",
    "podmonitor/flotilla-system/flotilla-models/0",
]
POD_NAME = "shop-pocket-0"
MODEL_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": POD_NAME,
        "namespace": "default",
        "labels": {
            "app.kubernetes.io/managed-by": "flotilla",
            "flotilla.dev/component": "model",
            "flotilla.dev/fleet": "shop",
            "flotilla.dev/model": "pocket",
            "flotilla.dev/runtime": "llamacpp",
        },
    },
    "spec": {
        "containers": [
            {"name": "server", "image": "llama-server", "ports": [{"name": "http", "containerPort": 8080}]}
        ],
    },
}  # fmt: skip


def _cluster(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = sessions.run(list(args), state_dir, timeout=240)
    assert done.returncode == 0, (
        f"e2e/cluster {' '.join(args)}: {done.returncode}\n{done.stdout}{done.stderr}"
    )
    return done


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state"
    yield path
    sessions.run(["down"], path)


def _recorded(state_dir: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((state_dir / "cluster.json").read_text())
    return record


def _prometheus_pid(state_dir: Path) -> int:
    (pid,) = [p["pid"] for p in _recorded(state_dir)["procs"] if p["name"] == "prometheus"]
    return int(pid)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _api(url: str, path: str) -> Any:
    body = httpx.get(f"{url}/api/v1/{path}", timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]


def _check_prometheus(state_dir: Path) -> None:
    """Ready, configured from the chart's three monitors and rules, discovering a model pod."""
    url = f"http://127.0.0.1:{_recorded(state_dir)['ports']['prometheus']}"
    assert httpx.get(f"{url}/-/ready", timeout=10).status_code == 200
    assert [job["job_name"] for job in _config(url)["scrape_configs"]] == JOBS
    assert sum(len(g["rules"]) for g in _api(url, "rules")["groups"]) == 7
    kubectl = settings.load().binary("kubectl")
    subprocess.run(
        [str(kubectl), "--kubeconfig", str(state_dir / "kubeconfig"), "apply", "-f", "-"],
        input=json.dumps(MODEL_POD), text=True, check=True, capture_output=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    labels: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        labels = [t["labels"] for t in _api(url, "targets")["activeTargets"] if t["scrapePool"] == JOBS[2]]
        if labels:
            break
        time.sleep(0.5)
    want = {"namespace": "default", "pod": POD_NAME, "fleet": "shop", "model": "pocket"}
    want["runtime"] = "llamacpp"
    assert [{k: t.get(k) for k in want} for t in labels] == [want]


def _config(url: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_api(url, "status/config")["yaml"])
    return config


def test_up_with_prometheus_starts_it_and_down_stops_it(state_dir: Path) -> None:
    up = _cluster(state_dir, "up", "--no-build", "--with", "prometheus")
    assert "prometheus: http://127.0.0.1:" in up.stdout
    pid = _prometheus_pid(state_dir)
    _check_prometheus(state_dir)
    again = _cluster(state_dir, "up", "--with", "prometheus")
    assert "nothing started" in again.stdout and _prometheus_pid(state_dir) == pid
    status = _cluster(state_dir, "status")
    assert "prometheus: http://127.0.0.1:" in status.stdout
    down = _cluster(state_dir, "down")
    assert "prometheus" in down.stdout
    assert not _running(pid) and not (state_dir / "prometheus").exists()


def test_with_prometheus_adds_it_to_a_running_cluster(state_dir: Path) -> None:
    _cluster(state_dir, "up")
    apiserver = next(p["pid"] for p in _recorded(state_dir)["procs"] if p["name"] == "kube-apiserver")
    added = _cluster(state_dir, "up", "--no-build", "--with", "prometheus")
    assert "prometheus ready at http://127.0.0.1:" in added.stdout
    assert next(p["pid"] for p in _recorded(state_dir)["procs"] if p["name"] == "kube-apiserver") == apiserver
    _check_prometheus(state_dir)
    pid = _prometheus_pid(state_dir)
    _cluster(state_dir, "down")
    assert not _running(pid)


def test_without_prometheus_built_up_names_the_build_command(state_dir: Path, tmp_path: Path) -> None:
    """A cache holding everything but Prometheus: `up --no-build --with prometheus` starts nothing."""
    real = settings.load()
    cache = tmp_path / "cache"
    cache.mkdir()
    for tool in ("k8s", "etcd", "kwok", "helm"):
        (cache / real.tool_dir(tool).name).symlink_to(real.tool_dir(tool))
    env = {**os.environ, "FLOTILLA_CLUSTER_DIR": str(state_dir), "FLOTILLA_CACHE": str(cache)}
    done = subprocess.run(
        [str(sessions.CLUSTER_CMD), "up", "--no-build", "--with", "prometheus"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "run e2e/cluster build --only prometheus" in done.stderr, done.stderr
    assert not (state_dir / "cluster.json").exists()
