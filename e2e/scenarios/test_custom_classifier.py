"""A fleet routing by its own trained classifier, end to end on the real node: the classifier file (trained
here, as `flotilla classifier train` would) is served from inside the cluster by a plain HTTP server pod (a
ConfigMap's binaryData mounted into the flotilla image running `python -m http.server`); the helm-installed
operator vets it and names it in the router config; the real router pod fetches it and routes a prompt to
`legal`, a task only this classifier knows. Then the fleet is switched to a file that is not a classifier:
the operator posts a Warning Event, and the router goes on routing by the classifier it has.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from clusterlib.waiting import Timeout, wait_until
from demolib import asking, installing
from demolib.forwarding import port_forward
from demolib.installing import Target
from demolib.tools import Tools

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "router"))  # headkit

import headkit

from flotilla.api.status import current_condition

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

FLEET = "counsel"
FILES = "classifiers"  # the file server's ConfigMap, Deployment and Service
IMAGE = "flotilla:0.1.0"  # scripts/build-images, as examples/03-local/standin.yaml uses it
ON_REAL_NODE = {
    "nodeSelector": {"kubernetes.io/hostname": "real-0"},
    "tolerations": [{"key": "flotilla.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
}


def file_server() -> list[dict[str, Any]]:
    """ConfigMap (the two files as binaryData), a Deployment serving them with `python -m http.server`, its
    Service."""
    labels = {"app.kubernetes.io/name": FILES}
    files = {"legal.npz": headkit.legal_head_bytes(), "garbage.npz": headkit.GARBAGE}
    container = {
        "name": "files",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "http.server", "8000", "--directory", "/srv"],
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"httpGet": {"path": "/legal.npz", "port": "http"}, "periodSeconds": 2},
        "volumeMounts": [{"name": "files", "mountPath": "/srv", "readOnly": True}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }  # fmt: skip
    pod = {
        **ON_REAL_NODE,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "files", "configMap": {"name": FILES}}],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": FILES},
            "binaryData": {name: base64.b64encode(data).decode() for name, data in files.items()},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": FILES, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": FILES},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]},
        },
    ]


def url(namespace: str, name: str) -> str:
    """The file's URL as the operator (another namespace) and the router both resolve it."""
    return f"http://{FILES}.{namespace}.svc:8000/{name}"


def fleet(namespace: str) -> dict[str, Any]:
    """Tasks `legal` and `chat` (default), both answered by the example's stand-in fallback; the router on
    the real node; the classifier from the file server."""
    example = yaml.safe_load((installing.EXAMPLE / "fleet.yaml").read_text())
    routing = {
        "defaultTask": "chat",
        "tasks": [{"name": "legal"}, {"name": "chat"}],
        "classifier": {"model": {"url": url(namespace, "legal.npz"), "sha256": headkit.legal_sha256()}},
    }
    spec = {
        "fallbacks": example["spec"]["fallbacks"],
        "routing": routing,
        "router": example["spec"]["router"],
    }
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET},
        "spec": spec,
    }


def classifier_condition(tools: Tools, namespace: str) -> dict[str, Any] | None:
    return current_condition(installing.fleet(tools, namespace, FLEET), "ClassifierReady")


def routed_model(tools: Tools, namespace: str) -> dict[str, str] | None:
    config_map = tools.get_json("configmap", f"{FLEET}-router", "-n", namespace)
    model: dict[str, str] | None = yaml.safe_load(config_map["data"]["router.yaml"])["classifier"]["model"]
    return model


def served(tools: Tools, namespace: str) -> bool:
    """The file server's Service lists a ready endpoint."""
    slices = tools.get_json("endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={FILES}")
    endpoints = [e for s in slices["items"] for e in s.get("endpoints") or []]
    return any((e.get("conditions") or {}).get("ready") for e in endpoints)


def classifier_in_use(router: str) -> tuple[str, str]:
    """(source, sha256) of the router's flotilla_router_classifier_info."""
    [labels] = [
        labels for labels, value in router_samples(router, "flotilla_router_classifier_info") if value == 1
    ]
    return labels["source"], labels["sha256"]


ADMIN: dict[str, str] = {}
"""Router API URL → the URL of its admin Service (port-forwarded), which serves /metrics."""


def router_samples(router: str, name: str) -> list[tuple[dict[str, str], float]]:
    with urllib.request.urlopen(f"{ADMIN.get(router, router)}/metrics", timeout=30) as response:
        text = response.read().decode()
    return [
        (s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    ]


@pytest.fixture(scope="module")
def counsel(installed: Target, tools: Tools) -> Iterator[str]:
    """The file server and fleet `counsel`, Ready with its classifier accepted; the router's URL."""
    namespace = installed.namespace
    for document in file_server():
        tools.apply(namespace, document)
    try:
        rollout = ("rollout", "status", f"deployment/{FILES}", "-n", namespace, "--timeout=180s")
        tools.kubectl(*rollout, timeout=200)
        wait_until(lambda: served(tools, namespace), 60, "the file server's endpoint", interval=1)
        # kube-proxy programs the Service a moment later (otherwise the first fetch is retried in 30 s)
        time.sleep(2)
        tools.apply(namespace, fleet(namespace))
        installing.wait_fleet_ready(tools, namespace, 300, name=FLEET)
        try:
            wait_until(lambda: (classifier_condition(tools, namespace) or {}).get("status") == "True", 90,
                       "ClassifierReady=True")  # fmt: skip
        except Timeout:  # say why (a head trained on another embedding than the image's, say)
            raise AssertionError(f"not accepted: {classifier_condition(tools, namespace)}") from None
        with (
            port_forward(tools, namespace, f"svc/{FLEET}-router", 8080) as port,
            port_forward(tools, namespace, f"svc/{FLEET}-router-admin", 9090) as admin,
        ):
            router = f"http://127.0.0.1:{port}"
            ADMIN[router] = f"http://127.0.0.1:{admin}"
            # Loaded at the router's start or, after a retried fetch, at its reload once the kubelet has
            # synced the ConfigMap volume (which can take a minute or two).
            wait_until(lambda: classifier_in_use(router)[0] == "custom", 180, "the router on the custom head",
                       interval=2)  # fmt: skip
            yield router
    finally:
        tools.kubectl("delete", "modelfleet", FLEET, "-n", namespace, "--ignore-not-found")
        for kind in ("deployment", "service", "configmap"):
            tools.kubectl("delete", kind, FILES, "-n", namespace, "--ignore-not-found")
        selector = f"flotilla.dev/fleet={FLEET}"
        wait_until(lambda: not installing.pods_of(tools, namespace, selector), 180,
                   "counsel's pods garbage-collected", interval=2)  # fmt: skip


def test_the_router_routes_by_the_fleets_own_classifier(
    installed: Target, tools: Tools, counsel: str
) -> None:
    answer = asking.chat(counsel, headkit.LEGAL_QUESTION, max_tokens=8)
    assert answer.status == 200, answer.body
    assert (answer.task, answer.reason, answer.model) == ("legal", "classifier", "frontier")
    assert classifier_in_use(counsel) == ("custom", headkit.legal_sha256())
    status = installing.fleet(tools, installed.namespace, FLEET)["status"]
    assert status["classifier"]["tasks"] == ["general", "legal"]
    hello = asking.chat(counsel, "Hi! How are you doing today?", max_tokens=8)
    assert hello.task == "chat"


def test_a_bad_classifier_gets_a_warning_and_the_router_keeps_routing_by_the_old_one(
    installed: Target, tools: Tools, counsel: str
) -> None:
    namespace = installed.namespace
    patch = [{"op": "replace", "path": "/spec/routing/classifier/model",
              "value": {"url": url(namespace, "garbage.npz"), "sha256": headkit.GARBAGE_SHA256}}]  # fmt: skip
    tools.kubectl("patch", "modelfleet", FLEET, "-n", namespace, "--type=json", "-p", json.dumps(patch))
    selector = f"involvedObject.kind=ModelFleet,involvedObject.name={FLEET},reason=ClassifierRejected"

    def rejected() -> list[dict[str, Any]]:
        items = tools.get_json("events", "-n", namespace, f"--field-selector={selector}")["items"]
        return [e for e in items if "garbage.npz is not a valid classifier" in e["message"]]

    [event] = wait_until(rejected, 60, "a ClassifierRejected Event about garbage.npz")
    assert event["type"] == "Warning"
    assert f"the routers keep classifier {headkit.legal_version()}" in event["message"]
    condition = classifier_condition(tools, namespace)
    assert condition is not None and condition["status"] == "False", condition
    assert routed_model(tools, namespace) == {
        "url": url(namespace, "legal.npz"),
        "sha256": headkit.legal_sha256(),
    }
    answer = asking.chat(counsel, headkit.LEGAL_QUESTION, max_tokens=8)
    assert (answer.status, answer.task) == (200, "legal")
    assert classifier_in_use(counsel) == ("custom", headkit.legal_sha256())
    # The router never saw the bad file: the operator kept it out of its config.
    assert router_samples(counsel, "flotilla_router_classifier_load_failures_total") == [({}, 0.0)]
