"""The built-in autoscaler on the real local cluster, next to the real operator process.

A real HTTP server exports the router's real prometheus-client gauges (a stand-in router pod whose load the
test steps; kwok pods run no process), published as an endpoint of the fleet's router Service. The
autoscaler the ``flotilla operator`` process started finds it through the EndpointSlice API, reads it,
patches the kwok GPU model's Deployment's spec.replicas while the same operator keeps
reconciling the fleet, and writes Events and status.autoscaling.
Asserts replicas climb step by step to the load-derived number capped at max, hold through the scale-down
delay, fall to zero with min 0, and that the number of scale events shows no flapping, across an operator
restart and across router pods coming and going (removed from the EndpointSlice, or listed but failing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import operatorkit as ok
import pytest
import scalingkit
from scalingkit import (
    DEPLOYMENT,
    FLEET,
    RouterMetricsServer,
    autoscaling_status,
    broken_server,
    publish_router,
    replicas,
    scale_events,
    unpublish_router,
    wait_deployment,
)

from flotilla import autoscaler
from flotilla.reconcile.kube import ApiError, Kube

pytestmark = pytest.mark.cluster

DOWN_DELAY = 8.0
WINDOW = 2.0
AUTOSCALER_ENV = scalingkit.autoscaler_env(interval=0.5)


def fleet_doc(namespace: str) -> dict[str, Any]:
    return scalingkit.fleet_doc(namespace, target=4, window=WINDOW, down_delay=DOWN_DELAY, max_replicas=3)


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


def test_operator_scales_a_gpu_model_on_router_load_up_to_max_then_down_to_zero(
    scaling_operator: ok.OperatorProcess, namespace: str, router: RouterMetricsServer
) -> None:
    router.set("coder", in_flight=6)  # ceil(6 / 4) = 2, from every sample: one step up from zero
    ok.apply_doc(fleet_doc(namespace))
    publish_router(namespace, router.url)
    wait_deployment(namespace)
    wait_replicas(namespace, 2, 60)
    router.set("coder", in_flight=9, queued=2)  # ceil(11 / 4) = 3
    wait_replicas(namespace, 3, 60, ready=False)  # (the shared kwok GPU node is sometimes NotReady)
    router.set("coder", in_flight=40)  # 10 wanted, capped at max 3
    time.sleep(6 + WINDOW)
    assert replicas(namespace)[0] == 3

    # the reconciler's field manager does not own spec.replicas (the autoscaler's scale-subresource
    # updates may or may not be recorded in managedFields, depending on the apiserver version)
    assert "flotilla" not in ok.replicas_owners(namespace, DEPLOYMENT)
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
    assert sorted(scale_events(namespace)) == ["ColdStart", "ScaleUp"]  # 0 -> 2 -> 3, nothing since

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
    assert (reasons.count("ColdStart"), reasons.count("ScaleUp")) == (1, 1)  # created at min 0: 0 -> 2 -> 3
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
    assert (ups.count("ColdStart"), ups.count("ScaleUp")) == (2, 1), ups
    assert not ok.log_errors(scaling_operator.log()), scaling_operator.log()[-3000:]


def hold_steady(namespace: str, want: int, routers: int, load: float, ticks: int = 6) -> None:
    """Wait until status.autoscaling shows ``load`` read from ``routers`` pods (the window holds only
    samples of the new router set), then ``ticks`` more ticks; spec.replicas is ``want`` all along."""
    seen: set[int] = set()
    last: list[dict[str, Any]] = [{}]

    def settled() -> bool:
        seen.add(replicas(namespace)[0])
        last[0] = autoscaling_status(namespace)
        return (last[0].get("routers"), last[0].get("load")) == (routers, load)

    try:
        ok.wait_until(settled, WINDOW + 30, f"status.autoscaling load {load} from {routers} router pods")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status: {last[0]}, replicas seen: {seen}") from None
    end = time.monotonic() + ticks * float(AUTOSCALER_ENV["FLOTILLA_AUTOSCALER_INTERVAL"])
    while time.monotonic() < end:
        seen.add(replicas(namespace)[0])
        time.sleep(0.2)
    assert seen == {want}, f"spec.replicas {seen} under a steady load of {load}"


def skipped(operator: ok.OperatorProcess, url: str) -> int:
    """Ticks on which the operator logged the router pod at ``url`` as unreadable."""
    address = url.removeprefix("http://")
    return sum(1 for line in operator.log().splitlines() if "skipped router pods" in line and address in line)


def test_router_pods_coming_and_going_under_steady_load_scale_nothing(
    scaling_operator: ok.OperatorProcess, namespace: str, router: RouterMetricsServer
) -> None:
    """A steady 8 requests in flight (2 replicas at 4 per replica) while router pods come and go: the
    requests move to the pods that remain, so the sum over the pods stays 8. A second pod appears and
    takes part of the load; it leaves the EndpointSlice; it comes back, then stops answering while still
    listed (connection refused), then answers HTTP 500. Each phase is held until status.autoscaling shows
    the whole load from the pods that answer, then several ticks more: spec.replicas stays 2 and no scale
    Event follows the first (0 -> 2, from the Deployment created at min 0). Each transition lowers one
    pod's share before raising another's, as a real drain does, so a tick between the two reads less,
    never more."""
    router.set("coder", in_flight=8)  # ceil(8 / 4) = 2
    ok.apply_doc(fleet_doc(namespace))
    publish_router(namespace, router.url, "a")
    wait_deployment(namespace)
    wait_replicas(namespace, 2, 60, ready=False)
    hold_steady(namespace, 2, routers=1, load=8)
    assert scale_events(namespace) == ["ColdStart"]

    second = RouterMetricsServer().start()
    try:
        second.set("coder")  # a new router pod: nothing in flight yet
        publish_router(namespace, second.url, "b")
        router.set("coder", in_flight=5)
        second.set("coder", in_flight=3)
        hold_steady(namespace, 2, routers=2, load=8)

        unpublish_router(namespace, "b")  # the pod went away: its requests return to the other one
        router.set("coder", in_flight=8)
        hold_steady(namespace, 2, routers=1, load=8)

        second.set("coder")
        publish_router(namespace, second.url, "b")
        router.set("coder", in_flight=2)
        second.set("coder", in_flight=6)
        hold_steady(namespace, 2, routers=2, load=8)
        assert skipped(scaling_operator, second.url) == 0
    finally:
        second.stop()  # still listed, but nothing answers on its port any more
    router.set("coder", in_flight=8)
    hold_steady(namespace, 2, routers=1, load=8)
    assert skipped(scaling_operator, second.url) >= 6  # once per tick, the held ticks at least

    with broken_server(500) as failing:  # listed and answering, but not with metrics
        publish_router(namespace, failing, "b")
        hold_steady(namespace, 2, routers=1, load=8)
        assert skipped(scaling_operator, failing) >= 6
    assert scale_events(namespace) == ["ColdStart"]
    assert replicas(namespace)[0] == 2
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
        assert replicas(namespace)[0] == 0  # created at min 0, and nothing scaled it despite the load
        assert scale_events(namespace) == []
        assert "built-in autoscaler off" in process.log()
    finally:
        process.stop()


def test_router_endpoints_come_from_the_services_endpoint_slices(namespace: str, kubeconfig: Path) -> None:
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "f-router-admin-abc",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": "f-router-admin"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "admin", "port": 9090, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.9.0.1"], "conditions": {"ready": True}},
            {"addresses": ["10.9.0.2"], "conditions": {"ready": False}},
        ],
    }
    ok.apply_doc(slice_)
    cluster = autoscaler.Cluster(Kube.connect(str(kubeconfig)), "flotilla-autoscaler")
    assert cluster.router_endpoints(namespace, "f-router-admin") == ["http://10.9.0.1:9090"]
    assert cluster.router_endpoints(namespace, "other-router") == []
    assert cluster.replicas(namespace, "no-such-deployment", "any-uid") is None


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
    assert replicas(namespace) == (0, 0)  # created at min 0
    # the autoscaler has read the router (its counter's first sight is the baseline)
    ok.wait_until(lambda: autoscaling_status(namespace).get("routers") == 1, 30, "the router pod read")
    time.sleep(2)  # several ticks, no load: it stays at zero
    assert replicas(namespace) == (0, 0)
    assert scale_events(namespace) == []

    cold.inc()  # the queued gauge stays 0 throughout
    wait_replicas(namespace, 1, 30, ready=False)
    time.sleep(3)  # several ticks without any load: the model keeps warming for the next requests
    assert replicas(namespace)[0] == 1
    assert scale_events(namespace) == ["ColdStart"]
    events = ok.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={FLEET}")
    message = next(e["message"] for e in events["items"] if e["reason"] == "ColdStart")
    assert "0 -> 1 replicas" in message and "1 requests found it cold" in message
    assert not ok.log_errors(scaling_operator.log()), scaling_operator.log()[-3000:]


def test_the_autoscaler_reads_and_scales_only_deployments_its_fleet_controls(
    flotilla_crds: None, namespace: str, operator_kubeconfig: Path
) -> None:
    """As the operator's ServiceAccount: a Deployment of the expected name that another owner controls
    reads as absent and is refused at the write (the JSON patch's test of the owner reference), untouched;
    the fleet's own is scaled."""

    def owner(name: str) -> dict[str, Any]:
        ok.apply_doc(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}
        )
        uid = ok.get_json("-n", namespace, "configmap", name)["metadata"]["uid"]
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid, "controller": True}

    mine, theirs = owner("mine"), owner("theirs")
    for name, ref in (("ours", mine), ("foreign", theirs)):
        ok.apply_doc({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": [ref]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "flotilla:none"}]}}},
        })  # fmt: skip
    cluster = autoscaler.Cluster(Kube.connect(str(operator_kubeconfig)), "flotilla-autoscaler")
    assert cluster.replicas(namespace, "ours", mine["uid"]) == 0
    assert cluster.replicas(namespace, "foreign", mine["uid"]) is None
    cluster.scale(namespace, "ours", 2, mine["uid"])
    assert cluster.replicas(namespace, "ours", mine["uid"]) == 2
    with pytest.raises(ApiError) as refused:
        cluster.scale(namespace, "foreign", 3, mine["uid"])
    assert refused.value.status == 422
    assert ok.get_json("-n", namespace, "deployment", "foreign")["spec"]["replicas"] == 0
