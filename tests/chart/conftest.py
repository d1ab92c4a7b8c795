"""Fixtures for the chart tests. The cluster tests reuse the operator helpers of tests/integration."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import chartkit
import operatorkit


@dataclass(frozen=True)
class Release:
    """One helm release of the chart in its own namespace."""

    name: str
    namespace: str

    @property
    def fullname(self) -> str:
        """Name of the Deployment, ServiceAccount and RBAC objects (`<release>-flotilla`)."""
        return f"{self.name}-flotilla"

    def install(self, *flags: str) -> None:
        """`helm install` without --wait: tests that need the operator pod available wait for it
        themselves (`wait_available`), with a message that shows the nodes and pods when it is not."""
        chartkit.helm(
            "install", self.name, str(chartkit.CHART), "--namespace", self.namespace, "--create-namespace",
            *flags, timeout=240,
        )  # fmt: skip

    def wait_available(self, timeout: float = 300) -> dict[str, Any]:
        """The operator Deployment once its one replica is updated and available (kwok runs the pod)."""

        def rolled_out() -> dict[str, Any] | None:
            deployment = operatorkit.get_json("deployment", self.fullname, "-n", self.namespace)
            status = deployment.get("status", {})
            done = (
                status.get("observedGeneration") == deployment["metadata"]["generation"]
                and status.get("updatedReplicas") == 1
                and status.get("availableReplicas") == 1
                and status.get("replicas") == 1
            )
            return dict(deployment) if done else None

        try:
            return operatorkit.wait_until(rolled_out, timeout, "the operator Deployment to roll out", 1.0)
        except AssertionError as exc:
            nodes = operatorkit.kubectl("get", "nodes", "-o", "wide", check=False)
            pods = operatorkit.kubectl("get", "pods", "-n", self.namespace, "-o", "wide", check=False)
            raise AssertionError(f"{exc}\n{nodes}\n{pods}") from None


@pytest.fixture
def release(cluster: object) -> Iterator[Release]:
    """A fresh release name and namespace; whatever is left is uninstalled and deleted afterwards."""
    suffix = uuid.uuid4().hex[:6]
    handle = Release(name=f"chart-{suffix}", namespace=f"flotilla-chart-{suffix}")
    yield handle
    chartkit.helm("uninstall", handle.name, "--namespace", handle.namespace, "--wait", check=False)
    operatorkit.kubectl("delete", "namespace", handle.namespace, "--wait=false", check=False)


@pytest.fixture
def fleet_namespace(cluster: object) -> Iterator[str]:
    """A namespace for ModelFleets, deleted afterwards."""
    with operatorkit.scratch_namespace("flotilla-chart-fleets") as name:
        yield name
