"""Fixtures for the chart tests. The cluster tests reuse the operator helpers of tests/integration."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
        chartkit.helm(
            "install", self.name, str(chartkit.CHART), "--namespace", self.namespace, "--create-namespace",
            "--wait", "--timeout", "180s", *flags, timeout=240,
        )  # fmt: skip


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
    name = f"flotilla-chart-fleets-{uuid.uuid4().hex[:6]}"
    operatorkit.kubectl("create", "namespace", name)
    yield name
    operatorkit.kubectl("delete", "namespace", name, "--wait=false", check=False)
