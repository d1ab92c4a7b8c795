"""The built-in autoscaler on the real local cluster, next to the real operator process.

A real HTTP server exports the router's real prometheus-client gauges (a stand-in router pod whose load the
test steps; kwok pods run no process), published as an endpoint of the fleet's router Service. The
autoscaler the ``flotilla operator`` process started finds it through the EndpointSlice API, reads it,
patches the kwok GPU model's Deployment through the scale subresource while the same operator keeps
reconciling the fleet, and writes Events and status.autoscaling.
Asserts replicas climb step by step to the load-derived number capped at max, hold through the scale-down
delay, fall to zero with min 0, and that the number of scale events shows no flapping.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import operatorkit as ok
import pytest

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
    scaling = {
        "mode": "builtin",
        "targetInFlight": 4,
        "window": f"{WINDOW:g}s",
        "scaleDownDelay": f"{DOWN_DELAY:g}s",
    }
    return ok.gpu_fleet(namespace, FLEET, {"min": 0, "max": 3}, scaling)


STANDIN_HOST = "router.flotilla.test"
"""The stand-in router's host name in its EndpointSlice; the operator connects to 127.0.0.1 for it."""
AUTOSCALER_ENV = {
    "FLOTILLA_AUTOSCALER_INTERVAL": "0.5",
    "FLOTILLA_AUTOSCALER_STATUS_PERIOD": "1",
    "FLOTILLA_AUTOSCALER_SCRAPE_TIMEOUT": "1",  # the kwok router pods' addresses never answer
    "FLOTILLA_AUTOSCALER_HOST_ALIASES": f"{STANDIN_HOST}=127.0.0.1",
}


@pytest.fixture
def scaling_operator(
    flotilla_crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[ok.OperatorProcess]:
    """``flotilla operator -n <ns>`` as its ServiceAccount, autoscaler on (the default) with short ticks."""
    process = ok.OperatorProcess(
        operator_kubeconfig, tmp_path, args=("--namespace", namespace), env=AUTOSCALER_ENV
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def router() -> Iterator[RouterMetricsServer]:
    server = RouterMetricsServer().start()
    yield server
    server.stop()


def publish_router(namespace: str, url: str) -> None:
    """Make the stand-in router pod one of the ``<fleet>-router`` Service's endpoints, as the EndpointSlice
    controller does for a ready router pod. The apiserver refuses loopback IPs in EndpointSlices, so the
    slice names a host (addressType FQDN) that the operator maps to 127.0.0.1
    (FLOTILLA_AUTOSCALER_HOST_ALIASES); it finds the slice through the real API."""
    port = int(url.rsplit(":", 1)[1])
    ok.apply_doc({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{FLEET}-router-standin",
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": f"{FLEET}-router",
                "endpointslice.kubernetes.io/managed-by": "flotilla-tests",
            },
        },
        "addressType": "FQDN",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [STANDIN_HOST], "conditions": {"ready": True}}],
    })  # fmt: skip


def wait_deployment(namespace: str) -> None:
    def exists() -> bool:
        return ok.kubectl_try("get", "deployment", DEPLOYMENT, "-n", namespace).returncode == 0

    ok.wait_until(exists, 90, "the operator to create the model Deployment")


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
            ok.wait_until(reached, 120, f"{DEPLOYMENT} with {want} ready pods")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; (spec, ready) seen: {sorted(set(seen))}") from None
    return at


def scale_events(namespace: str) -> list[str]:
    """Reasons of the autoscaler's Events on the fleet (in no particular order)."""
    events = ok.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={FLEET}")
    return [e["reason"] for e in events["items"] if e["reason"] in ("ScaleUp", "ScaleDown", "ColdStart")]


def replicas_owners(namespace: str) -> set[str]:
    """Field managers owning the Deployment's spec.replicas (server-side apply bookkeeping)."""
    body = ok.get_json("deployment", DEPLOYMENT, "-n", namespace, "--show-managed-fields")
    return {
        m["manager"]
        for m in body["metadata"].get("managedFields", [])
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    }


def test_operator_scales_a_gpu_model_on_router_load_up_to_max_then_down_to_zero(
    scaling_operator: ok.OperatorProcess, namespace: str, router: RouterMetricsServer
) -> None:
    ok.apply_doc(fleet_doc(namespace))
    publish_router(namespace, router.url)
    wait_deployment(namespace)
    router.set("coder", in_flight=6)  # ceil(6 / 4) = 2
    wait_replicas(namespace, 2, 60)
    router.set("coder", in_flight=9, queued=2)  # ceil(11 / 4) = 3
    wait_replicas(namespace, 3, 60, ready=False)  # (the shared kwok GPU node is sometimes NotReady)
    router.set("coder", in_flight=40)  # 10 wanted, capped at max 3
    time.sleep(6 + WINDOW)
    assert replicas(namespace)[0] == 3

    # the reconciler's field manager does not own spec.replicas (the autoscaler's scale-subresource
    # updates may or may not be recorded in managedFields, depending on the apiserver version)
    assert "flotilla" not in replicas_owners(namespace)
    # a full re-apply of the rendered Deployment (drift restore) keeps the autoscaler's count
    body = ok.get_json("deployment", DEPLOYMENT, "-n", namespace)
    container = body["spec"]["template"]["spec"]["containers"][0]
    ok.kubectl("set", "image", f"deployment/{DEPLOYMENT}", f"{container['name']}=example.invalid/x:1",
               "-n", namespace)  # fmt: skip

    def image_restored() -> bool:
        now = ok.get_json("deployment", DEPLOYMENT, "-n", namespace)
        return bool(now["spec"]["template"]["spec"]["containers"][0]["image"] == container["image"])

    ok.wait_until(image_restored, 60, "the operator to restore the Deployment")
    assert replicas(namespace)[0] == 3

    # an operator restart under steady load scales nothing (no flapping, no reset to the default)
    scaling_operator.stop()
    assert not ok.log_errors(scaling_operator.log()), scaling_operator.log()[-3000:]
    scaling_operator.start()
    time.sleep(8 + WINDOW)
    assert replicas(namespace)[0] == 3
    assert scale_events(namespace) == ["ScaleUp", "ScaleUp"]  # 1 -> 2 -> 3, nothing since

    router.set("coder", in_flight=0, queued=0)
    stopped = time.monotonic()
    time.sleep(DOWN_DELAY - 3)  # still inside the delay: nothing removed
    assert replicas(namespace)[0] == 3
    zero = wait_replicas(namespace, 0, DOWN_DELAY + WINDOW + 60)
    assert zero - stopped >= DOWN_DELAY - 1  # (1 s: the load may have been read just before `stopped`)

    # the operator kept reconciling meanwhile and did not put replicas back
    time.sleep(3)
    assert replicas(namespace) == (0, 0)
    reasons = scale_events(namespace)
    assert reasons.count("ScaleUp") == 2
    assert 1 <= reasons.count("ScaleDown") <= 3  # the emptying window may step 3 -> 2 -> 1 -> 0

    def scaled_to_zero() -> dict[str, Any] | None:
        fleet = ok.get_json("modelfleet", FLEET, "-n", namespace)
        models = {m["name"]: m for m in fleet.get("status", {}).get("models", [])}
        return fleet if models.get("coder", {}).get("phase") == "ScaledToZero" else None

    fleet = ok.wait_until(scaled_to_zero, 30, "status.models[coder].phase ScaledToZero")
    entry = fleet["status"]["autoscaling"][0]
    assert (entry["name"], entry["desiredReplicas"], entry["routers"]) == ("coder", 0, 1)
    assert entry["lastScaleTime"]
    assert fleet["status"].get("conditions"), "the reconciler's status fields are still there"
    events = ok.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={FLEET}")
    assert any("load" in e["message"] for e in events["items"] if e["reason"] == "ScaleUp")

    router.set("coder", queued=1)  # a request held for the cold model: back to 1 at once
    wait_replicas(namespace, 1, 30, ready=False)
    ups = scale_events(namespace)
    assert ups.count("ColdStart") + ups.count("ScaleUp") == 3, ups
    assert not ok.log_errors(scaling_operator.log()), scaling_operator.log()[-3000:]


def test_no_autoscaler_flag_leaves_replicas_alone(
    flotilla_crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path,
    router: RouterMetricsServer,
) -> None:  # fmt: skip
    process = ok.OperatorProcess(
        operator_kubeconfig, tmp_path, args=("--namespace", namespace, "--no-autoscaler"), env=AUTOSCALER_ENV
    )
    process.start()
    try:
        ok.apply_doc(fleet_doc(namespace))
        publish_router(namespace, router.url)
        router.set("coder", in_flight=12)  # 3 wanted
        wait_deployment(namespace)
        time.sleep(8)
        assert replicas(namespace)[0] == 1  # the Kubernetes default: nothing scaled it
        assert scale_events(namespace) == []
        assert "built-in autoscaler off" in process.log()
    finally:
        process.stop()


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


def test_a_cold_request_seen_only_in_the_counter_wakes_a_model_at_zero(
    scaling_operator: ok.OperatorProcess, namespace: str, router: RouterMetricsServer
) -> None:
    """A request that found the model cold and spilled before any scrape saw it held (short cold-start
    budget): only ``flotilla_router_cold_requests_total`` moved, and that alone scales 0 -> 1."""
    cold = router.metrics.cold_requests.labels("coder")
    cold.inc(3)  # spills from before the operator started: a baseline, not demand
    ok.apply_doc(fleet_doc(namespace))
    publish_router(namespace, router.url)
    wait_deployment(namespace)
    wait_replicas(namespace, 0, DOWN_DELAY + WINDOW + 60)  # no load: parked after the delay
    assert scale_events(namespace) == ["ScaleDown"]

    cold.inc()  # the queued gauge stays 0 throughout
    wait_replicas(namespace, 1, 30, ready=False)
    time.sleep(3)  # several ticks without any load: the model keeps warming for the next requests
    assert replicas(namespace)[0] == 1
    assert sorted(scale_events(namespace)) == ["ColdStart", "ScaleDown"]
    events = ok.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={FLEET}")
    message = next(e["message"] for e in events["items"] if e["reason"] == "ColdStart")
    assert "0 -> 1 replicas" in message and "1 requests found it cold" in message
    assert not ok.log_errors(scaling_operator.log()), scaling_operator.log()[-3000:]
