"""The pure parts of the API client: paths, kinds, error classification (the I/O is tested on the cluster)."""

from __future__ import annotations

import pytest

from flotilla import errors
from flotilla.reconcile import kube


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        (kube.DEPLOYMENT, "/apis/apps/v1/namespaces/ai/deployments/f-a"),
        (kube.SERVICE, "/api/v1/namespaces/ai/services/f-a"),
        (kube.ROLE_BINDING, "/apis/rbac.authorization.k8s.io/v1/namespaces/ai/rolebindings/f-a"),
        (kube.HPA, "/apis/autoscaling/v2/namespaces/ai/horizontalpodautoscalers/f-a"),
    ],
)
def test_paths(kind: kube.Kind, path: str) -> None:
    assert kind.item("ai", "f-a") == path
    assert kind.collection("ai") == path.rsplit("/", 1)[0]


def test_kind_of_known_and_unknown() -> None:
    assert kube.kind_of({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}) is kube.PDB
    with pytest.raises(errors.InvalidSpecError, match="does not manage objects of kind batch/v1/Job"):
        kube.kind_of({"apiVersion": "batch/v1", "kind": "Job"})


def test_every_child_kind_is_in_exactly_one_apply_wave() -> None:
    waves = list(kube.APPLY_WAVES)
    for kind in kube.CHILD_KINDS:
        assert sum((kind.api_version, kind.kind) in w for w in waves) == 1, kind


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(0, True), (409, True), (429, True), (500, True), (503, True), (400, False), (403, False), (422, False)],
)
def test_retryable(status: int, retryable: bool) -> None:
    assert kube.ApiError(status, "x", "").retryable is retryable


def test_api_error_prefers_the_status_message() -> None:
    body = '{"kind": "Status", "message": "Deployment.apps \\"x\\" is invalid: spec.replicas: must be >= 0"}'
    error = kube._api_error(422, "Unprocessable Entity", body)
    assert (
        str(error) == '422 Unprocessable Entity: Deployment.apps "x" is invalid: spec.replicas: must be >= 0'
    )
    assert kube._api_error(502, "Bad Gateway", "<html>").args[0] == "502 Bad Gateway: <html>"
