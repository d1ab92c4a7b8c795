"""Fixtures for the issue-2 acceptance tests: a Kubernetes API client and a throwaway namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from clusterlib.waiting import wait_until


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> client.ApiClient:
    """An API client of the official Kubernetes Python client, authenticated by the session's kubeconfig."""
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace (ready for pods: its default ServiceAccount exists), deleted after the test."""
    core = client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def has_default_sa() -> bool:
        return any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items)

    wait_until(has_default_sa, 30, f"the default ServiceAccount in {name}")
    yield name
    core.delete_namespace(name)
