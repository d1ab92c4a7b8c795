"""Fixtures for the operator's acceptance tests on the real local cluster (marker ``cluster``).

The session installs the generated CRD and the operator's RBAC. Each test gets its own namespace and its
own ``flotilla operator --namespace <it>`` process, authenticated as the operator's ServiceAccount, so
least-privilege RBAC and namespace scoping are exercised by every test, and the operator never touches
fleets other test suites create on the shared cluster.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import operatorkit
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import PYTHON, Proc, free_port

from flotilla.router.classifying import datasets

MATH_ANSWERS = datasets.shared_data() / "math-answers.jsonl"
"""Word problems and their answers (../shared/data): the knowing stand-in's answer key."""


@pytest.fixture(scope="session")
def flotilla_crds(cluster: object) -> None:
    """The generated CRDs, installed once (``flotilla crds | kubectl apply -f -``)."""
    operatorkit.install_crds()


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig for the flotilla-operator ServiceAccount (RBAC from examples/rbac/operator.yaml)."""
    return operatorkit.service_account_kubeconfig(tmp_path_factory.mktemp("operator-sa"))


@pytest.fixture
def namespace(cluster: object) -> Iterator[str]:
    """A fresh namespace for one test, deleted (with everything in it) afterwards."""
    with operatorkit.scratch_namespace("flotilla-it") as name:
        yield name


@pytest.fixture
def operator(
    flotilla_crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[operatorkit.OperatorProcess]:
    """``flotilla operator --namespace <the test's namespace>``, stopped before the namespace is deleted."""
    process = operatorkit.OperatorProcess(operator_kubeconfig, tmp_path, args=("--namespace", namespace))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[str]:
    """The stand-in cloud provider (``flotilla.standin``) on loopback: its base URL."""
    port = free_port()
    proc = Proc("standin", [PYTHON, "-m", "flotilla.standin", "--port", str(port)], tmp_path)
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", 30)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture
def knowing_standin(tmp_path: Path) -> Iterator[str]:
    """A stand-in that answers "#### <answer>" for prompts of the math answer key: its base URL."""
    if not MATH_ANSWERS.exists():
        pytest.fail(f"{MATH_ANSWERS} is missing (the shared math answer key)")
    port = free_port()
    argv = [PYTHON, "-m", "flotilla.standin", "--port", str(port), "--answers", str(MATH_ANSWERS)]
    proc = Proc("standin-key", argv, tmp_path)
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", 30)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture
def keda_crds(cluster: object) -> Iterator[None]:
    """KEDA's own CRDs, installed for one test (``operatorkit.keda_crds``)."""
    with operatorkit.keda_crds():
        yield
