"""Root pytest configuration: the session-wide local Kubernetes cluster from `e2e/cluster`.

Tests marked `@pytest.mark.cluster` (or asking for the `cluster` / `kubeconfig` fixtures) run against a real
kube-apiserver with kwok CPU and GPU nodes (docs/cluster.md). The cluster comes up once per test run:

- outside CI, a healthy cluster already started with `e2e/cluster up` is reused and left running;
- otherwise a private one is started in a temporary state dir and stopped at the end of the run
  (`FLOTILLA_CLUSTER_REUSE=0` forces this);
- if it cannot start, the tests that need it fail with `up`'s message: they never skip.

`KUBECONFIG` and a `PATH` holding the pinned kubectl and helm are exported into `os.environ` for the
session, so subprocesses (kubectl, helm, the operator) talk to the same cluster.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))

from clusterlib import sessions, settings

UP_TIMEOUT_S = 240  # seconds `up` may wait for readiness on a loaded 2-core machine


@pytest.fixture(scope="session")
def cluster() -> Iterator[sessions.Cluster]:
    """The local cluster, up for the whole test run (see the module docstring for reuse rules)."""
    try:
        handle = sessions.start(UP_TIMEOUT_S)
    except settings.ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    saved = {key: os.environ.get(key) for key in ("KUBECONFIG", "PATH")}
    os.environ.update(handle.env())
    try:
        yield handle
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sessions.stop(handle)


@pytest.fixture(scope="session")
def kubeconfig(cluster: sessions.Cluster) -> Path:
    """Path of the admin kubeconfig of the session's cluster."""
    return cluster.kubeconfig


@pytest.fixture(autouse=True)
def _cluster_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """Bring the cluster up for tests marked `cluster` even when they do not name the fixture."""
    if request.node.get_closest_marker("cluster") is not None:
        request.getfixturevalue("cluster")
