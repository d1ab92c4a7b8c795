"""Root pytest configuration: the session-wide local Kubernetes cluster from `e2e/cluster`.

Tests marked `@pytest.mark.cluster` (or asking for the `cluster` / `kubeconfig` fixtures) run against a real
kube-apiserver with kwok CPU and GPU nodes (docs/cluster.md). The cluster comes up once per test run:

- outside CI, a healthy cluster already started with `e2e/cluster up` is reused and left running;
- otherwise a private one is started in a temporary state dir and stopped at the end of the run
  (`FLOTILLA_CLUSTER_REUSE=0` forces this);
- if it cannot start, the tests that need it fail with `up`'s message: they never skip.

Tests marked `@pytest.mark.realnode` (or asking for `real_node`) also get the real worker node `real-0`
(containerd + kubelet + kube-proxy, root only), added to the session's cluster on first use and stopped
with it; a default run that selects no such test never starts it.

`KUBECONFIG` and a `PATH` holding the pinned kubectl and helm are exported into `os.environ` for the
session, so subprocesses (kubectl, helm, the operator) talk to the same cluster; with the real node,
`CONTAINERD_ADDRESS` too (for `ctr` and `scripts/build-images --load`).
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))

from clusterlib import sessions, settings
from clusterlib.waiting import wait_until


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# A run stopped by SIGTERM (`timeout`, a CI job's cancel) tears its fixtures down as Ctrl-C does: without
# this, pytest dies at once and the clusters, stand-in providers and model servers it started keep running.
signal.signal(signal.SIGTERM, _interrupt)

UP_TIMEOUT_S = 240  # seconds `up` may wait for readiness on a loaded 2-core machine
SAVED_ENV = ("KUBECONFIG", "PATH", "CONTAINERD_ADDRESS")


@pytest.fixture(scope="session")
def cluster() -> Iterator[sessions.Cluster]:
    """The local cluster, up for the whole test run (see the module docstring for reuse rules)."""
    try:
        handle = sessions.start(UP_TIMEOUT_S)
    except settings.ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    if not handle.started_here:
        _refuse_installed_operators(handle.kubeconfig)
    saved = {key: os.environ.get(key) for key in SAVED_ENV}
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


def _refuse_installed_operators(kubeconfig: Path) -> None:
    """Fail when a reused cluster runs a helm-installed Flotilla operator (`make demo`): it would reconcile
    the tests' fleets beside the operators the tests start."""
    apps = client.AppsV1Api(config.new_client_from_config(str(kubeconfig)))
    found = apps.list_deployment_for_all_namespaces(label_selector="app.kubernetes.io/name=flotilla").items
    if found:
        names = ", ".join(f"{d.metadata.namespace}/{d.metadata.name}" for d in found)
        pytest.fail(
            f"the reused cluster runs a Flotilla operator ({names}), e.g. from `make demo`: remove it with "
            "`e2e/demo down` (or stop the cluster with `e2e/cluster down`) before running the tests",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def real_node(cluster: sessions.Cluster) -> sessions.RealNode:
    """The real worker node of the session's cluster (started on first use, stopped with the cluster)."""
    try:
        node = sessions.add_real_node(cluster, UP_TIMEOUT_S)
    except settings.ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    os.environ["CONTAINERD_ADDRESS"] = str(node.containerd_socket)
    return node


@pytest.fixture(scope="session")
def kubeconfig(cluster: sessions.Cluster) -> Path:
    """Path of the admin kubeconfig of the session's cluster."""
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> client.ApiClient:
    """An API client of the official Kubernetes Python client, authenticated by the session's kubeconfig."""
    api_client: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return api_client


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace (ready for pods: its default ServiceAccount exists), deleted after the test."""
    core = client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def has_default_sa() -> bool:
        accounts = core.list_namespaced_service_account(name).items
        return any(sa.metadata is not None and sa.metadata.name == "default" for sa in accounts)

    wait_until(has_default_sa, 30, f"the default ServiceAccount in {name}")
    yield name
    core.delete_namespace(name)


@pytest.fixture(autouse=True)
def _cluster_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """Bring the cluster (and the real node) up for marked tests even when they do not name the fixture."""
    if request.node.get_closest_marker("realnode") is not None:
        request.getfixturevalue("real_node")
    elif request.node.get_closest_marker("cluster") is not None:
        request.getfixturevalue("cluster")
