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
    assert kube.kind_of({"apiVersion": "batch/v1", "kind": "Job"}) is kube.JOB  # training Jobs
    with pytest.raises(errors.InvalidSpecError, match="does not manage objects of kind batch/v1/CronJob"):
        kube.kind_of({"apiVersion": "batch/v1", "kind": "CronJob"})


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


def test_a_hung_apiserver_times_out_instead_of_pinning_the_worker(tmp_path) -> None:
    """An apiserver that accepts the connection and never answers: the call fails (retryable) in bounded
    time instead of blocking its worker thread forever."""
    import socket
    import threading
    import time

    import yaml

    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "hung",
        "clusters": [{"name": "hung", "cluster": {"server": f"http://127.0.0.1:{server.getsockname()[1]}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "hung", "context": {"cluster": "hung", "user": "u"}}],
    }))  # fmt: skip
    client = kube.Kube.connect(str(kubeconfig), timeout=(1.0, 1.0))
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            client.get(kube.DEPLOYMENT, "ai", "f-a")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(10)
    try:
        assert not worker.is_alive(), "the API call is still blocked after 10 s"
        assert isinstance(outcome[0], kube.ApiError) and outcome[0].retryable
        assert time.monotonic() - started < 3  # one read timeout, not retried
    finally:
        server.close()
        for conn in accepted:
            conn.close()
        client.close()
