"""`e2e/cluster up --with kuberay-crds`: KubeRay's RayService CRD (pinned in e2e/gomod/kuberay, fetched by
`e2e/cluster build`) is installed with a fresh cluster and into a running one, and served.

Each test runs `e2e/cluster` in its own state dir (a private cluster, ~5 s to start), so the session's
cluster is never disturbed. `--no-build`: a CRD not fetched yet fails with the command to run.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterlib import sessions, settings

pytestmark = pytest.mark.cluster


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state"
    yield path
    sessions.run(["down"], path)


def _cluster(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = sessions.run(list(args), state_dir, timeout=240)
    assert done.returncode == 0, (
        f"e2e/cluster {' '.join(args)}: {done.returncode}\n{done.stdout}{done.stderr}"
    )
    return done


def _served_versions(state_dir: Path) -> list[str]:
    kubectl = settings.load().binary("kubectl")
    done = subprocess.run(
        [str(kubectl), "--kubeconfig", str(state_dir / "kubeconfig"), "get", "crd", "rayservices.ray.io",
         "-o", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return []
    crd = json.loads(done.stdout)
    return [v["name"] for v in crd["spec"]["versions"] if v["served"]]


def test_up_with_kuberay_crds_installs_the_rayservice_crd(state_dir: Path) -> None:
    up = _cluster(state_dir, "up", "--no-build", "--with", "kuberay-crds")
    assert f"rayservices.ray.io (KubeRay {settings.read_pins().kuberay}) installed" in up.stdout
    assert "v1" in _served_versions(state_dir)


def test_with_kuberay_crds_adds_it_to_a_running_cluster(state_dir: Path) -> None:
    _cluster(state_dir, "up", "--no-build")
    assert _served_versions(state_dir) == []
    again = _cluster(state_dir, "up", "--no-build", "--with", "kuberay-crds")
    assert "cluster already up" in again.stdout
    assert "v1" in _served_versions(state_dir)
