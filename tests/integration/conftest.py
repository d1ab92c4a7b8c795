"""Fixtures for the operator's acceptance tests on the real local cluster (marker ``cluster``).

The session installs the generated CRD and the operator's RBAC, then runs ``flotilla operator`` as a
separate process authenticated as its ServiceAccount (so least-privilege RBAC is exercised by every test).
Each test gets its own namespace, deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import operatorkit
import pytest


@pytest.fixture(scope="session")
def flotilla_crds(cluster: object) -> None:
    """The generated CRDs, installed once (``flotilla crds | kubectl apply -f -``)."""
    operatorkit.install_crds()


@pytest.fixture(scope="session")
def operator(
    cluster: object, flotilla_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[operatorkit.OperatorProcess]:
    """``flotilla operator --all-namespaces`` running as the flotilla-operator ServiceAccount."""
    logs = tmp_path_factory.mktemp("operator")
    process = operatorkit.OperatorProcess(operatorkit.service_account_kubeconfig(logs), logs)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def namespace(cluster: object) -> Iterator[str]:
    """A fresh namespace for one test, deleted (with everything in it) afterwards."""
    name = f"flotilla-it-{uuid.uuid4().hex[:8]}"
    operatorkit.kubectl("create", "namespace", name)
    yield name
    operatorkit.kubectl("delete", "namespace", name, "--wait=false", check=False)
