"""Acceptance: a pack with `engine: kuberay` on the real apiserver. Without KubeRay's RayService CRD its
models are Degraded, saying KubeRay is not installed, and the rest of the fleet is applied; with KubeRay's
own CRD (v1.5.0, from its Go module: `e2e/cluster build --only kuberay-crds`) installed for the duration,
the operator applies a RayService per pack pod instead of a Deployment (server-side apply: every field must
fit KubeRay's schema), owned by the fleet, the router looks for the models behind KubeRay's serve Service,
and switching the pack back to `engine: pod` prunes the RayService for a pack Deployment.

No KubeRay operator runs here: nothing reconciles the RayService into pods (docs/packing.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import operatorkit as ok
import pytest
import yaml

pytestmark = pytest.mark.cluster

FLEET = "rayfleet"
CRD_NAME = "rayservices.ray.io"
RAYSERVICE = f"{FLEET}-small-1"


def fleet_doc(namespace: str, engine: str) -> dict[str, Any]:
    models = [
        {
            "name": name,
            "source": {"uri": "pvc://gguf/gemma-3-270m-q4_k_m.gguf"},
            "runtime": "llamacpp",
            "env": [{"name": "CHAT_FORMAT", "value": "gemma"}],
            "placement": {"pack": "small", "memory": "300Mi"},
        }
        for name in ("a", "b")
    ]
    spec = {"packs": [{"name": "small", "memory": "3Gi", "engine": engine, "maxLoaded": 1}], "models": models}
    meta = {"name": FLEET, "namespace": namespace}
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "ModelFleet", "metadata": meta, "spec": spec}


def crd_exists() -> bool:
    return ok.kubectl_try("get", "crd", CRD_NAME).returncode == 0


@pytest.fixture
def kuberay_crd(cluster: object) -> Iterator[None]:
    """KubeRay's RayService CRD installed for one test, then deleted (fails, rather than touch it, when the
    cluster already has one)."""
    sys.path.insert(0, str(ok.ROOT / "e2e"))
    from clusterlib import settings

    path = settings.load().kuberay_crd
    if not path.exists():
        raise AssertionError(f"{path} is missing: run `e2e/cluster build --only kuberay-crds` first")
    if crd_exists():
        raise AssertionError(f"{CRD_NAME} already exists on this cluster (a real KubeRay?)")
    ok.kubectl("apply", "--server-side", "-f", str(path))
    ok.wait_until(
        lambda: ok.kubectl_try("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=10s")
        .returncode == 0,
        60, "the RayService CRD Established",
    )  # fmt: skip
    try:
        yield
    finally:
        ok.kubectl("delete", "crd", CRD_NAME, "--timeout=90s", check=False)


def model_status(namespace: str, name: str) -> dict[str, Any]:
    status = ok.get_json("modelfleet", FLEET, "-n", namespace).get("status") or {}
    return next((m for m in status.get("models", []) if m["name"] == name), {})


def rayservice(namespace: str) -> dict[str, Any] | None:
    found = ok.kubectl_try("get", CRD_NAME, RAYSERVICE, "-n", namespace, "-o", "json")
    return json.loads(found.stdout) if found.returncode == 0 else None


def test_kuberay_pack_is_degraded_when_kuberay_is_not_installed(
    operator: ok.OperatorProcess, namespace: str
) -> None:
    assert not crd_exists(), f"{CRD_NAME} is installed; this test needs a cluster without KubeRay"
    ok.apply_doc(fleet_doc(namespace, "kuberay"))
    for model in ("a", "b"):
        ok.wait_until(lambda m=model: model_status(namespace, m).get("phase") == "Degraded", 90,
                      f"model {model} Degraded")  # fmt: skip
        message = model_status(namespace, model)["message"]
        assert "KubeRay (spec.packs[].engine kuberay) is not installed" in message, message
        assert f"rayservices.ray.io/v1, so RayService {RAYSERVICE} cannot be applied" in message, message
    fleet = ok.get_json("modelfleet", FLEET, "-n", namespace)
    assert ok.condition(fleet, "Degraded") == "True"
    assert ok.kubectl_try("get", "deployment", f"{FLEET}-router", "-n", namespace).returncode == 0
    assert ok.kubectl_try("get", "deployment", f"{FLEET}-pack-small-1", "-n", namespace).returncode != 0
    assert not ok.log_errors(operator.log()), operator.log()[-3000:]


def test_kuberay_pack_is_applied_as_a_rayservice_and_pruned_when_back_to_pod(
    kuberay_crd: None, operator: ok.OperatorProcess, namespace: str
) -> None:
    ok.apply_doc(fleet_doc(namespace, "kuberay"))
    body = ok.wait_until(lambda: rayservice(namespace), 90, f"RayService {RAYSERVICE}")
    fleet = ok.get_json("modelfleet", FLEET, "-n", namespace)
    (owner,) = body["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "ModelFleet", FLEET, fleet["metadata"]["uid"], True,
    )  # fmt: skip
    assert body["metadata"]["annotations"]["flotilla.dev/pack-models"] == "a,b"
    head = body["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert head["template"]["spec"]["containers"][0]["image"].startswith("flotilla-ray:")
    serve = yaml.safe_load(body["spec"]["serveConfigV2"])
    assert [m["name"] for m in serve["applications"][0]["args"]["models"]] == ["a", "b"]
    assert ok.kubectl_try("get", "deployment", f"{FLEET}-pack-small-1", "-n", namespace).returncode != 0
    router = yaml.safe_load(
        ok.get_json("configmap", f"{FLEET}-router", "-n", namespace)["data"]["router.yaml"]
    )
    services = {m["name"]: m["service"] for m in router["models"]}
    assert services["a"]["name"] == f"{RAYSERVICE}-serve-svc" and services["a"]["path"] == "/a"
    assert services["a"]["port"] == 8000
    assert model_status(namespace, "a").get("phase") != "Degraded"

    ok.apply_doc(fleet_doc(namespace, "pod"))
    ok.wait_until(lambda: rayservice(namespace) is None, 90, f"RayService {RAYSERVICE} pruned")
    ok.wait_until(
        lambda: ok.kubectl_try("get", "deployment", f"{FLEET}-pack-small-1", "-n", namespace).returncode == 0,
        90, "the pack's Deployment",
    )  # fmt: skip
    assert not ok.log_errors(operator.log()), operator.log()[-3000:]
