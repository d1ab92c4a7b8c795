"""Acceptance: the operator's RBAC is least privilege — and enough, since every test's operator runs with
exactly these permissions (see conftest.py)."""

from __future__ import annotations

from pathlib import Path

import operatorkit as ok
import pytest

pytestmark = pytest.mark.cluster

SUBJECT = "system:serviceaccount:{}:{}".format(*ok.OPERATOR_SA)


def can(verb: str, resource: str, *extra: str) -> bool:
    done = ok.kubectl_try("auth", "can-i", verb, resource, f"--as={SUBJECT}", *extra)
    return done.stdout.strip() == "yes"


@pytest.mark.parametrize(
    ("verb", "resource", "extra"),
    [
        ("list", "secrets", ["-A"]),
        ("watch", "secrets", ["-n", "default"]),
        ("*", "*", ["-A"]),  # not cluster-admin
        ("create", "clusterroles", []),
        ("escalate", "roles", ["-A"]),
        ("bind", "roles", ["-A"]),
        ("create", "pods", ["-A"]),
        ("delete", "pods", ["-A"]),  # pods are read (scheduling reasons), never written
        ("delete", "modelfleets.flotilla.dev", ["-A"]),
        ("update", "modelfleets.flotilla.dev", ["-A"]),
        ("list", "customresourcedefinitions", []),
        ("get", "nodes", []),
        ("update", "deployments.apps/scale", ["-A"]),
    ],
)
def test_operator_cannot(
    flotilla_crds: None, operator_kubeconfig: Path, verb: str, resource: str, extra: list[str]
) -> None:
    assert not can(verb, resource, *extra)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("patch", "deployments.apps"),
        ("create", "services"),
        ("delete", "configmaps"),
        ("watch", "horizontalpodautoscalers.autoscaling"),
        ("patch", "modelfleets.flotilla.dev/status"),
        ("create", "events"),
        ("watch", "pods"),  # why the scheduler cannot place a fleet's pod
        ("get", "secrets"),  # spec.access keys, by name
        # the built-in autoscaler
        ("get", "deployments.apps/scale"),
        ("patch", "deployments.apps/scale"),
        ("list", "endpointslices.discovery.k8s.io"),
        ("list", "modelfleets.flotilla.dev"),
    ],
)
def test_operator_can(flotilla_crds: None, operator_kubeconfig: Path, verb: str, resource: str) -> None:
    """(``flotilla_crds``: kubectl resolves ``modelfleets.flotilla.dev`` only once the CRD exists, so the
    test would depend on the order tests run in without it.)"""
    assert can(verb, resource, "-A")
