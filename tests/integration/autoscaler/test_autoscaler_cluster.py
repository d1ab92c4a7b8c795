"""The built-in autoscaler on the real local cluster, next to the real operator process.

A real HTTP server exports the router's real prometheus-client gauges (a stand-in router pod whose load the
test steps); the autoscaler reads it, patches the kwok GPU model's Deployment through the scale
subresource while the operator keeps reconciling the fleet, and writes Events and status.autoscaling.
Asserts replicas climb step by step to the load-derived number capped at max, hold through the scale-down
delay, fall to zero with min 0, and that the number of scale events shows no flapping.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import operatorkit as ok
import pytest
from prometheus_client import CollectorRegistry

from flotilla import autoscaler
from flotilla.reconcile.kube import Kube

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "autoscaler"))  # shared test servers
from metricservers import RouterMetricsServer

pytestmark = pytest.mark.cluster

FLEET = "elastic"
DEPLOYMENT = f"{FLEET}-coder"
DOWN_DELAY = 8.0
WINDOW = 2.0


def fleet_doc(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET, "namespace": namespace},
        "spec": {
            "models": [
                {
                    "name": "coder",
                    "source": {"uri": "hf://Qwen/Qwen2.5-0.5B-Instruct"},
                    "runtime": "vllm",
                    "accelerator": {"gpus": 1, "product": "NVIDIA-L4"},
                    "replicas": {"min": 0, "max": 3},
                    "autoscaling": {
                        "mode": "builtin",
                        "targetInFlight": 4,
                        "window": f"{WINDOW:g}s",
                        "scaleDownDelay": f"{DOWN_DELAY:g}s",
                    },
                }
            ]
        },
    }


class Running:
    """``autoscaler.run`` in its own thread and event loop (the test body polls kubectl synchronously)."""

    def __init__(
        self, settings: autoscaler.AutoscalerSettings, cluster: autoscaler.Cluster, url: str
    ) -> None:
        self.namespace = settings.namespaces[0]
        self.metrics = autoscaler.AutoscalerMetrics(CollectorRegistry())
        self._args = (settings, cluster, url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._started = threading.Event()

    async def _main(self) -> None:
        settings, cluster, url = self._args
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()

        async def discover(_: object) -> list[str]:
            return [url]

        await autoscaler.run(settings, cluster, stop=self._stop, metrics=self.metrics, discover=discover)

    def start(self) -> Running:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def events(self, direction: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "flotilla_autoscaler_scale_events_total",
            {"namespace": self.namespace, "fleet": FLEET, "model": "coder", "direction": direction},
        )
        return value or 0.0


@pytest.fixture
def router() -> Iterator[RouterMetricsServer]:
    server = RouterMetricsServer().start()
    yield server
    server.stop()


def replicas(namespace: str) -> tuple[int, int]:
    """(spec.replicas, status.readyReplicas) of the model's Deployment."""
    body = ok.get_json("deployment", DEPLOYMENT, "-n", namespace)
    return int(body["spec"].get("replicas", 0)), int(body.get("status", {}).get("readyReplicas") or 0)


def wait_replicas(namespace: str, want: int, timeout: float, ready: bool = True) -> float:
    """Wait until spec.replicas (and, with ``ready``, kwok's ready pods) equal ``want``; returns when
    spec.replicas got there."""
    seen: list[tuple[int, int]] = []

    def reached() -> bool:
        seen.append(replicas(namespace))
        return seen[-1] == (want, want)

    def wanted() -> bool:
        seen.append(replicas(namespace))
        return seen[-1][0] == want

    try:
        ok.wait_until(wanted, timeout, f"{DEPLOYMENT} spec.replicas {want}")
        at = time.monotonic()
        if ready:  # kwok marks the pods Ready; slower when the shared machine is busy
            ok.wait_until(reached, 90, f"{DEPLOYMENT} with {want} ready pods")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; (spec, ready) seen: {sorted(set(seen))}") from None
    return at


def test_load_steps_replicas_up_to_max_then_down_to_zero_without_flapping(
    operator: ok.OperatorProcess, namespace: str, kubeconfig: Path, router: RouterMetricsServer
) -> None:
    ok.apply_doc(fleet_doc(namespace))
    ok.wait_until(lambda: ok.kubectl_try("get", "deployment", DEPLOYMENT, "-n", namespace).returncode == 0,
                  60, "the operator to create the model Deployment")  # fmt: skip
    settings = autoscaler.AutoscalerSettings(interval=0.5, status_period=1.0, namespaces=(namespace,))
    cluster = autoscaler.Cluster(Kube.connect(str(kubeconfig)), settings.field_manager)
    running = Running(settings, cluster, router.url).start()
    try:
        router.set("coder", in_flight=6)  # ceil(6 / 4) = 2
        wait_replicas(namespace, 2, 30)
        router.set("coder", in_flight=9, queued=2)  # ceil(11 / 4) = 3
        wait_replicas(namespace, 3, 30)
        router.set("coder", in_flight=40)  # 10 wanted, capped at max 3
        time.sleep(3 * settings.interval + WINDOW)
        assert replicas(namespace)[0] == 3

        router.set("coder", in_flight=0, queued=0)
        stopped = time.monotonic()
        time.sleep(DOWN_DELAY - 2)  # still inside the delay: nothing removed
        assert replicas(namespace)[0] == 3
        zero = wait_replicas(namespace, 0, DOWN_DELAY + WINDOW + 20)
        assert zero - stopped >= DOWN_DELAY

        # the operator kept reconciling meanwhile and did not put replicas back
        time.sleep(2)
        assert replicas(namespace) == (0, 0)
        assert running.events("up") == 2  # 1 -> 2 -> 3, no oscillation under steady load
        assert 1 <= running.events("down") <= 3  # the emptying window may step 3 -> 2 -> 1 -> 0

        fleet = ok.get_json("modelfleet", FLEET, "-n", namespace)
        entry = fleet["status"]["autoscaling"][0]
        assert (entry["name"], entry["desiredReplicas"], entry["routers"]) == ("coder", 0, 1)
        assert entry["lastScaleTime"]
        assert fleet["status"].get("conditions"), "the reconciler's status fields are still there"
        events = ok.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={FLEET}")
        reasons = [e["reason"] for e in events["items"] if e["reason"] in ("ScaleUp", "ScaleDown")]
        assert reasons.count("ScaleUp") == 2
        assert any("load" in e["message"] for e in events["items"] if e["reason"] == "ScaleUp")

        router.set("coder", queued=1)  # a request held for the cold model: back to 1 at once
        wait_replicas(namespace, 1, 10, ready=False)
        assert running.events("up") == 3
    finally:
        running.stop()


def test_router_endpoints_come_from_the_services_endpoint_slices(namespace: str, kubeconfig: Path) -> None:
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "f-router-abc",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": "f-router"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.9.0.1"], "conditions": {"ready": True}},
            {"addresses": ["10.9.0.2"], "conditions": {"ready": False}},
        ],
    }
    ok.apply_doc(slice_)
    cluster = autoscaler.Cluster(Kube.connect(str(kubeconfig)), "flotilla-autoscaler")
    assert cluster.router_endpoints(namespace, "f-router") == ["http://10.9.0.1:8080"]
    assert cluster.router_endpoints(namespace, "other-router") == []
    assert cluster.replicas(namespace, "no-such-deployment") is None
