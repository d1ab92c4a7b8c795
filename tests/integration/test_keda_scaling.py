"""Acceptance: KEDA's real operator and metrics apiserver scale a `mode: keda` model 0 -> 1 -> 3 under
router load and back to 0.

What is real: KEDA's operator and metrics apiserver (v2.20.2, built from source by `e2e/cluster build`)
and its CRDs; the ScaledObject the `flotilla operator` process rendered for the fleet (pollingInterval
and cooldownPeriod from the spec's window and scaleDownDelay); KEDA's prometheus scaler querying a real
Prometheus, which discovers a real `flotilla router` process through the chart's router ServiceMonitor
(as in test_observability); the router's in-flight gauge, raised by requests held at the stand-in
provider. KEDA activates the Deployment 0 -> 1 itself; past one replica the HPA it creates (run by the
real kube-controller-manager) reads the same query as an external metric through the kube-apiserver's
aggregation layer and KEDA's metrics apiserver.

What is not: the model's pods (kwok runs no process), so the proof is the Deployment's spec.replicas.
The router runs on loopback, published in an EndpointSlice under a host name that the scrape config maps
to 127.0.0.1, with its rendered config pointed at the stand-in instead of the model's Service. The
metrics apiserver is reached without a front-proxy CA, as system:anonymous (see kedakit).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import operatorkit as ok
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))  # helm template of the chart
import aggregationkit
import chartkit
import kedakit
import promkit
import routerpodkit

pytestmark = pytest.mark.cluster

FLEET = "kedaload"
MODEL = "sleeper"
HOLD = 3.0  # seconds the stand-in holds each request, so the router counts it in flight
SCALE_TIMEOUT = 120  # generous: a loaded 2-core machine, KEDA polling, Prometheus scraping every second


def _fleet(namespace: str) -> dict[str, Any]:
    model = {
        "name": MODEL,
        "source": {"uri": "hf://Qwen/Qwen2.5-0.5B-Instruct"},
        "runtime": "vllm",
        "accelerator": {"gpus": 1, "product": "NVIDIA-L4"},
        "replicas": {"min": 0, "max": 3},
        "tasks": ["chat"],
        # window -> KEDA pollingInterval, scaleDownDelay -> cooldownPeriod (and the HPA's scale-down window)
        "autoscaling": {"mode": "keda", "targetInFlight": 2, "window": "1s", "scaleDownDelay": "5s"},
    }
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET, "namespace": namespace},
        "spec": {"models": [model], "routing": {"defaultTask": "chat"}},
    }


def _replicas(namespace: str) -> int | None:
    found = ok.get_json("deployment", f"{FLEET}-{MODEL}", "-n", namespace)
    return found["spec"].get("replicas")


HELD = {"model": MODEL, "max_tokens": 4,
        "messages": [{"role": "user", "content": f"[standin delay={HOLD}] hello"}]}  # fmt: skip
"""A request the stand-in holds HOLD s: clients sending it one after another keep the router's in-flight
gauge for the model at their number."""


def test_keda_scales_a_model_from_zero_to_max_under_router_load_and_back(
    flotilla_crds: None,
    keda_crds: None,
    operator_kubeconfig: Path,
    kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    cloud: str,
) -> None:
    chart = chartkit.template(
        namespace=namespace,
        values={"metrics.serviceMonitor.enabled": True, "operator.watchNamespaces": [namespace]},
    )
    (monitor,) = [
        m for m in chartkit.by_kind(chart, "ServiceMonitor") if m["metadata"]["name"].endswith("-routers")
    ]
    prometheus = promkit.Prometheus([promkit.scrape_config(monitor, kubeconfig)], [], tmp_path)
    operator = ok.OperatorProcess(
        operator_kubeconfig, tmp_path, args=("--namespace", namespace),
        env={"FLOTILLA_KEDA_PROMETHEUS_URL": prometheus.url},
    )  # fmt: skip
    keda: kedakit.KedaOperator | None = None
    adapter: kedakit.KedaMetricsServer | None = None
    api: str | None = None
    router: routerpodkit.LoopbackRouter | None = None
    load: routerpodkit.Load | None = None
    try:
        ok.apply_doc(_fleet(namespace))
        operator.start()
        config = routerpodkit.rendered_config(namespace, FLEET, lambda _: cloud)
        router = routerpodkit.LoopbackRouter(namespace, FLEET, config, tmp_path)
        prometheus.wait_loopback_targets("servicemonitor/", 1, timeout=90)

        scaled = ok.get_json("scaledobject.keda.sh", f"{FLEET}-{MODEL}", "-n", namespace)["spec"]
        assert (scaled["pollingInterval"], scaled["cooldownPeriod"], scaled["idleReplicaCount"]) == (1, 5, 0)
        assert scaled["triggers"][0]["metadata"]["serverAddress"] == prometheus.url
        assert _replicas(namespace) == 0, "created at replicas.min"

        keda = kedakit.KedaOperator(kubeconfig, namespace, tmp_path)

        def ready_condition() -> dict[str, Any] | None:
            status = ok.get_json("scaledobject.keda.sh", f"{FLEET}-{MODEL}", "-n", namespace).get("status")
            conditions = {c["type"]: c for c in (status or {}).get("conditions", [])}
            ready = conditions.get("Ready")
            return ready if ready and ready.get("status") == "True" else None

        ok.wait_until(ready_condition, SCALE_TIMEOUT, "KEDA to mark the ScaledObject Ready", interval=1)

        # KEDA's metrics apiserver behind the aggregation layer, for the HPA KEDA created (above 1 replica).
        adapter = kedakit.KedaMetricsServer(keda, kubeconfig, namespace, tmp_path)
        api = aggregationkit.register(adapter.register_docs(), SCALE_TIMEOUT)
        time.sleep(5)  # several polls at zero load: KEDA must leave the model parked
        assert _replicas(namespace) == 0, keda.log()[-3000:]

        # Load step up: KEDA's query sees the router's in-flight gauge and activates the Deployment (0 -> 1),
        # then the HPA reads the same query through the adapter: 5 in flight / targetInFlight 2 -> 3 = max.
        load = routerpodkit.Load(
            f"{router.url}/v1/chat/completions", HELD, clients=5, timeout=60, join_timeout=HOLD + 30
        )
        started = time.monotonic()
        ok.wait_until(lambda: (_replicas(namespace) or 0) >= 1 or None, SCALE_TIMEOUT,
                      f"KEDA to scale {FLEET}-{MODEL} 0 -> 1 under load", interval=0.5)  # fmt: skip
        up_seconds = time.monotonic() - started
        owners = ok.replicas_owners(namespace, f"{FLEET}-{MODEL}")
        if _replicas(namespace) == 1:  # not yet taken over by the HPA
            assert any("keda" in owner for owner in owners), f"spec.replicas set by {owners}, not KEDA"
        active = ok.get_json("scaledobject.keda.sh", f"{FLEET}-{MODEL}", "-n", namespace)["status"]
        assert any(c["type"] == "Active" and c["status"] == "True" for c in active["conditions"]), active
        ok.wait_until(lambda: _replicas(namespace) == 3 or None, SCALE_TIMEOUT,
                      f"KEDA's HPA to scale {FLEET}-{MODEL} 1 -> 3", interval=0.5)  # fmt: skip
        n_seconds = time.monotonic() - started

        # Load step down: the HPA goes back to 1, and once the gauge is 0 for the cooldown KEDA parks the
        # model at zero again.
        load.stop()
        assert load.statuses and set(load.statuses) == {200}, load.statuses
        started = time.monotonic()
        ok.wait_until(lambda: _replicas(namespace) == 0 or None, SCALE_TIMEOUT,
                      f"KEDA to scale {FLEET}-{MODEL} to 0 after the cooldown", interval=0.5)  # fmt: skip
        down_seconds = time.monotonic() - started
        assert down_seconds >= 3, "not at once: after the 5 s cooldown (less a poll and a scrape)"
        errors = [line for line in keda.log().splitlines() if '"level":"error"' in line]
        assert not errors, "\n".join(errors[:5])
        print(f"KEDA 0->1 after {up_seconds:.1f} s of load, ->3 after {n_seconds:.1f} s, "
              f"->0 {down_seconds:.1f} s after it stopped")  # fmt: skip
    finally:
        if load is not None:
            load.stop()
        if api is not None:
            aggregationkit.unregister(api)
        if adapter is not None:
            adapter.stop()
        if keda is not None:
            # KEDA puts a finalizer on the ScaledObject: delete it while KEDA runs to remove it, or the
            # namespace (and KEDA's CRDs after it) would hang in deletion.
            operator.stop()
            ok.kubectl("delete", "scaledobject.keda.sh", f"{FLEET}-{MODEL}", "-n", namespace,
                       "--timeout=60s", check=False)  # fmt: skip
            keda.stop()
        if router is not None:
            router.stop()
        operator.stop()
        prometheus.stop()
