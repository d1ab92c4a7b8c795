"""Acceptance: the operator process vets a fleet's own classifier, fetched from a real HTTP server on the
host, before its router config names it. A good file: ClassifierReady=True, status.classifier and the router
ConfigMap name it. A bad one: a Warning Event saying why, ClassifierReady=False, and the ConfigMap keeps
the last accepted classifier (none for a fleet that never had one). A restart neither fetches the files
again nor repeats the Events.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import operatorkit as ok
import pytest
import yaml

sys.path.insert(0, str(ok.ROOT / "tests" / "router"))  # headkit

import headkit

from flotilla.api.status import current_condition

pytestmark = pytest.mark.cluster

TIMEOUT = 60.0


@pytest.fixture
def files(tmp_path: Path) -> Iterator[headkit.FileServer]:
    directory = tmp_path / "files"
    headkit.write(directory, "legal.npz", headkit.legal_head_bytes())
    headkit.write(directory, "garbage.npz", headkit.GARBAGE)
    with headkit.serving(directory) as server:
        yield server


@pytest.fixture
def operator(
    flotilla_crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[ok.OperatorProcess]:
    """The operator with its own temporary directory, so its classifier cache starts empty."""
    (tmp_path / "tmp").mkdir()
    env = {"TMPDIR": str(tmp_path / "tmp"), "FLOTILLA_ALLOWED_HTTP_PROVIDER_HOSTS": "standin"}  # the fallback
    process = ok.OperatorProcess(operator_kubeconfig, tmp_path, args=("--namespace", namespace), env=env)
    process.start()
    yield process
    process.stop()


def fleet_doc(namespace: str, name: str, url: str, sha256: str) -> dict[str, Any]:
    """A fleet of one stand-in fallback with tasks `legal` and `chat` (default), routed by ``url``."""
    fallback = {"name": "frontier", "provider": "openai-compatible", "baseURL": "http://standin:8080/v1",
                "model": "stand-in"}  # fmt: skip
    routing = {
        "defaultTask": "chat",
        "tasks": [{"name": "legal"}, {"name": "chat"}],
        "classifier": {"model": {"url": url, "sha256": sha256}},
    }
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"fallbacks": [fallback], "routing": routing},
    }


def classifier_condition(namespace: str, name: str) -> dict[str, Any] | None:
    """ClassifierReady of the fleet's current generation."""
    return current_condition(ok.get_json("modelfleet", name, "-n", namespace), "ClassifierReady")


def wait_classifier(namespace: str, name: str, status: str) -> dict[str, Any]:
    return ok.wait_until(
        lambda: (c := classifier_condition(namespace, name)) and c["status"] == status and c,
        TIMEOUT, f"{name} ClassifierReady={status}",
    )  # fmt: skip


def routed_model(namespace: str, name: str) -> dict[str, str] | None:
    """classifier.model of the router config the operator rendered."""
    config_map = ok.get_json("configmap", f"{name}-router", "-n", namespace)
    model: dict[str, str] | None = yaml.safe_load(config_map["data"]["router.yaml"])["classifier"]["model"]
    return model


def events(namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    selector = f"reason={reason},involvedObject.name={name}"
    items: list[dict[str, Any]] = ok.get_json("events", "-n", namespace, f"--field-selector={selector}")[
        "items"
    ]
    return items


def test_a_bad_classifier_is_rejected_and_the_routers_keep_the_accepted_one(
    operator: ok.OperatorProcess, namespace: str, files: headkit.FileServer
) -> None:
    good_url, garbage_url = f"{files.url}/legal.npz", f"{files.url}/garbage.npz"
    ok.apply_doc(fleet_doc(namespace, "counsel", good_url, headkit.legal_sha256()))
    accepted = wait_classifier(namespace, "counsel", "True")
    assert accepted["reason"] == "ClassifierAccepted"
    status = ok.get_json("modelfleet", "counsel", "-n", namespace)["status"]
    assert status["classifier"]["sha256"] == headkit.legal_sha256()
    assert status["classifier"]["tasks"] == ["general", "legal"]
    assert routed_model(namespace, "counsel") == {"url": good_url, "sha256": headkit.legal_sha256()}
    assert ok.wait_until(lambda: events(namespace, "counsel", "ClassifierAccepted"), 30, "ClassifierAccepted")

    patch = [{"op": "replace", "path": "/spec/routing/classifier/model",
              "value": {"url": garbage_url, "sha256": headkit.GARBAGE_SHA256}}]  # fmt: skip
    ok.kubectl("patch", "modelfleet", "counsel", "-n", namespace, "--type=json", "-p", json.dumps(patch))
    rejected = wait_classifier(namespace, "counsel", "False")
    assert rejected["reason"] == "ClassifierRejected"
    assert "garbage.npz is not a valid classifier" in rejected["message"]
    assert f"the routers keep classifier {headkit.legal_version()} from {good_url}" in rejected["message"]
    [warning] = ok.wait_until(lambda: events(namespace, "counsel", "ClassifierRejected"), 30, "the Warning")
    assert warning["type"] == "Warning"
    assert "garbage.npz is not a valid classifier" in warning["message"]
    assert routed_model(namespace, "counsel") == {"url": good_url, "sha256": headkit.legal_sha256()}
    status = ok.get_json("modelfleet", "counsel", "-n", namespace)["status"]
    assert status["classifier"]["sha256"] == headkit.legal_sha256()

    # A fleet whose first classifier is already wrong (a digest the file does not have) gets none: the
    # packaged one.
    ok.apply_doc(fleet_doc(namespace, "fresh", good_url, "0" * 64))
    fresh = wait_classifier(namespace, "fresh", "False")
    assert f"has sha256 {headkit.legal_sha256()}, but the fleet pins {'0' * 64}" in fresh["message"]
    assert "the routers keep the packaged classifier" in fresh["message"]
    assert routed_model(namespace, "fresh") is None
    assert "classifier" not in ok.get_json("modelfleet", "fresh", "-n", namespace)["status"]
    assert ok.wait_until(lambda: events(namespace, "fresh", "ClassifierRejected"), 30, "fresh's Warning")

    fetched = dict(files.gets)
    assert fetched == {"/legal.npz": 2, "/garbage.npz": 1}  # `fresh` fetched legal.npz for its digest
    operator.stop()
    operator.start()
    ok.wait_until(lambda: operator.log().count("applied") >= 2, TIMEOUT, "both fleets resumed")
    assert files.gets == {**fetched, "/legal.npz": 3}  # only the refused file again, never the cached ones
    assert len(events(namespace, "counsel", "ClassifierRejected")) == 1
    assert len(events(namespace, "fresh", "ClassifierRejected")) == 1
    assert ok.log_errors(operator.log()) == []
