"""Acceptance: the HPA the operator renders for a `mode: hpa` model, run by the real
kube-controller-manager, scales it 1 -> 3 under load on a real llama-server and back to 1.

What is real: the HPA (the `flotilla operator` process rendered it: Pods metric
`flotilla_model_in_flight_requests`, target `targetInFlight`, scale-down window `scaleDownDelay`); the
custom metrics API it reads, prometheus-adapter v0.12.0 (built from source by `e2e/cluster build`) running
exactly the rule docs/autoscaling.md documents, registered as `v1beta1.custom.metrics.k8s.io`; the
Prometheus it asks, scraping ggml's `llama-server --metrics` (Gemma 3 270M) as the model's pods through the
chart's PodMonitor; the load, long generations streamed through a real `flotilla router` to it, raising
`llamacpp:requests_processing`. What is not: the model's pods (kwok runs no process; one llama-server on
loopback plays them all), so the proof is the Deployment's spec.replicas. See reactionkit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import operatorkit as ok
import pytest
import reactionkit as rk

pytestmark = pytest.mark.cluster

METRIC = "flotilla_model_in_flight_requests"


def _pod_metrics(namespace: str) -> dict[str, float]:
    """The custom metric per model pod, as the HPA controller reads it through the aggregation layer."""
    selector = f"flotilla.dev/fleet={rk.FLEET},flotilla.dev/model=hpa"
    path = (
        f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/*/{METRIC}?labelSelector={selector}"
    )
    done = ok.kubectl_try("get", "--raw", path)
    if done.returncode != 0:
        return {}
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
    return {i["describedObject"]["name"]: _quantity(i["value"]) for i in items}


def _quantity(value: str) -> float:
    """A Kubernetes quantity as the adapter writes metric values: plain, or in thousandths (`1500m`)."""
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _rescales(namespace: str) -> list[str]:
    events = ok.get_json(
        "events", "-n", namespace, "--field-selector", f"involvedObject.name={rk.deployment('hpa')}"
    )
    return [e["message"] for e in events["items"] if e["reason"] == "SuccessfulRescale"]


def test_hpa_scales_a_model_on_its_model_servers_in_flight_requests(
    flotilla_crds: None, operator_kubeconfig: Path, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    stack = rk.Stack(("hpa",), namespace, kubeconfig, operator_kubeconfig, tmp_path, down_delay="5s")
    try:
        hpa = ok.get_json("hpa", rk.deployment("hpa"), "-n", namespace)["spec"]
        (metric,) = hpa["metrics"]
        assert metric["pods"]["metric"]["name"] == METRIC
        assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": str(rk.TARGET)}
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (rk.MIN, rk.MAX)
        assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 5

        # Idle: the adapter serves 0 for the model's one pod (llama-server's gauges, relisted every second).
        idle = ok.wait_until(lambda: _pod_metrics(namespace), 90, f"{METRIC} in the custom metrics API", 1)
        assert list(idle.values()) == [0.0], idle
        assert rk.replicas(namespace, "hpa") == rk.MIN

        reaction = stack.step("hpa", clients=rk.MAX * rk.TARGET)
        owners = ok.replicas_owners(namespace, rk.deployment("hpa"))
        assert owners == {"kube-controller-manager"}, f"spec.replicas set by {owners}, not the HPA controller"
        rescales = _rescales(namespace)
        assert any(f"New size: {rk.MAX}" in m and f"{METRIC} above target" in m for m in rescales), rescales
        assert any(f"New size: {rk.MIN}" in m and "below target" in m for m in rescales), rescales
        adapter_errors = [line for line in stack.adapter.log().splitlines() if line.startswith("E")]
        assert not adapter_errors, "\n".join(adapter_errors[:5])
        print(
            f"HPA ->{rk.MIN + 1} after {reaction.first_up:.1f} s of load, ->{rk.MAX} after "
            f"{reaction.at_max:.1f} s, ->{rk.MIN} {reaction.back_to_min:.1f} s after it stopped"
        )
    finally:
        stack.close()
