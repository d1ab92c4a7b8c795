"""Acceptance: without the chart's admission policy, the operator itself refuses a fleet outside its
allow-lists (FLOTILLA_ALLOWED_*, secure defaults): Ready=False reason NotAllowed, a Warning Event, no child.
"""

from __future__ import annotations

import json
import time
from typing import Any

import operatorkit as ok
import pytest

pytestmark = pytest.mark.cluster

MINIMAL = ok.ROOT / "examples" / "01-minimal" / "fleet.yaml"
TIMEOUT = 60
KEY = {"secretKeyRef": {"name": "collector-bait", "key": "api-key"}}


def _ready(namespace: str, name: str) -> dict[str, Any] | None:
    """The Ready condition of the fleet's current generation."""
    body = ok.get_json("modelfleet", name, "-n", namespace)
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready" and cond.get("observedGeneration") == body["metadata"]["generation"]:
            return dict(cond)
    return None


def _warnings(namespace: str, name: str) -> list[str]:
    selector = f"involvedObject.name={name},reason=NotAllowed,type=Warning"
    return [
        e["message"] for e in ok.get_json("events", "-n", namespace, f"--field-selector={selector}")["items"]
    ]


def _refused(namespace: str, name: str) -> tuple[dict[str, Any], list[str]]:
    ready = ok.wait_until(
        lambda: (c := _ready(namespace, name)) and c["reason"] == "NotAllowed" and c,
        TIMEOUT,
        f"{name} refused",
    )
    return ready, ok.wait_until(lambda: _warnings(namespace, name), TIMEOUT, f"{name}'s Warning Event")


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        ("plain-http", {"fallbacks": [{"name": "collector", "provider": "openai-compatible", "model": "m",
                                       "baseURL": "http://collector.example/v1", "apiKey": KEY}]},
         "plain http is only allowed to the hosts the operator names for it (none)"),
        ("other-host", {"fallbacks": [{"name": "collector", "provider": "openai-compatible", "model": "m",
                                       "baseURL": "https://collector.example/v1", "apiKey": KEY}]},
         "host collector.example is not among the operator's allowed provider hosts (none)"),
        ("metadata", {"fallbacks": [{"name": "collector", "provider": "openai-compatible", "model": "m",
                                     "baseURL": "http://169.254.169.254/latest"}]},
         "169.254.169.254 is a link-local or cloud metadata address"),
        ("model-image", {"image": "attacker.example/exfil:1"},
         "spec.models[0].image 'attacker.example/exfil:1' is not allowed"),
        ("router-image", {"router": {"image": "attacker.example/router:1"}},
         "spec.router.image 'attacker.example/router:1' is not allowed"),
    ],
    ids=["plain-http", "other-host", "metadata", "model-image", "router-image"],
)  # fmt: skip
def test_fleet_outside_the_allow_lists_is_refused_and_gets_no_children(
    operator: ok.OperatorProcess, namespace: str, name: str, edit: dict[str, Any], expected: str
) -> None:
    doc = ok.fleet_doc(MINIMAL, namespace, name)
    if "image" in edit:
        doc["spec"]["models"][0]["image"] = edit["image"]
    else:
        doc["spec"].update(edit)
    ok.apply_doc(doc)
    ready, warnings = _refused(namespace, name)
    assert ready["status"] == "False" and expected in ready["message"], ready
    assert any(expected in w for w in warnings), warnings
    assert ok.children(namespace, name) == []
    assert "Traceback" not in operator.log(), operator.log()[-3000:]  # kopf logs the refusal at ERROR


def test_a_running_fleet_changed_to_a_refused_image_keeps_its_children_as_they_were(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    """Nothing of the refused generation is applied, and a deleted child is not restored from it."""
    doc = ok.fleet_doc(MINIMAL, namespace, "minimal")
    ok.apply_doc(doc)
    ok.wait_until(lambda: ok.children(namespace, "minimal"), TIMEOUT, "the allowed fleet's children")
    router = "minimal-router"
    image = ok.wait_until(lambda: _image(namespace, router), TIMEOUT, "the router Deployment")
    patch = [{"op": "add", "path": "/spec/router/image", "value": "attacker.example/router:1"}]
    ok.kubectl("patch", "modelfleet", "minimal", "-n", namespace, "--type=json", "-p", json.dumps(patch))
    _refused(namespace, "minimal")
    assert _image(namespace, router) == image
    ok.kubectl("delete", "deployment", router, "-n", namespace)
    deadline = time.monotonic() + 5  # the operator sees the deletion within a second; it must not restore
    while time.monotonic() < deadline:  # the router from the refused generation
        assert _image(namespace, router) in (None, image)
        time.sleep(0.2)
    assert "Traceback" not in operator.log(), operator.log()[-3000:]  # kopf logs the refusal at ERROR


def _image(namespace: str, deployment: str) -> str | None:
    done = ok.kubectl_try("get", "deployment", deployment, "-n", namespace, "-o", "json")
    if done.returncode != 0:
        return None
    return str(json.loads(done.stdout)["spec"]["template"]["spec"]["containers"][0]["image"])
