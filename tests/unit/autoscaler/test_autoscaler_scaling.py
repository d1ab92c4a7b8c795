"""The autoscaler loop with a fake clock, real router metrics servers over HTTP and an in-memory cluster
(the real-cluster run is tests/integration/autoscaler): pods coming and going, restarts, status writes."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import pytest_asyncio
from metricservers import RouterMetricsServer, router_servers
from prometheus_client import CollectorRegistry

from flotilla.api.fleet import ModelFleet
from flotilla.autoscaler import AutoscalerMetrics, AutoscalerSettings
from flotilla.autoscaler.scaling import Autoscaler, builtin_models
from flotilla.reconcile.kube import ApiError

NS, FLEET = "ai", "f"
MODEL: dict[str, Any] = {
    "name": "coder",
    "source": {"uri": "hf://Qwen/Qwen2.5-Coder-1.5B-Instruct-AWQ"},
    "runtime": "vllm",
    "accelerator": {"gpus": 1},
    "replicas": {"min": 0, "max": 4},
    "autoscaling": {"targetInFlight": 4, "window": "10s", "scaleDownDelay": "60s"},
}
FIXED = {**MODEL, "name": "fixed", "replicas": {"min": 1}}


def fleet_body(*models: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET, "namespace": NS, "uid": "u"},
        "spec": {"models": list(models)},
    }


class FakeCluster:
    """Deployments' replicas, scale calls, Events and status writes, in memory."""

    def __init__(self, body: dict[str, Any], replicas: dict[str, int]) -> None:
        self.body = body
        self.deployments = dict(replicas)
        self.scaled: list[tuple[str, int]] = []
        self.events: list[tuple[str, str]] = []
        self.statuses: list[list[dict[str, Any]]] = []
        self.fail_next = False

    def list_fleets(self, namespaces: Sequence[str] = ()) -> list[dict[str, Any]]:
        return [copy.deepcopy(self.body)]

    def router_endpoints(self, namespace: str, service: str) -> list[str]:
        raise AssertionError("tests pass discover")

    def replicas(self, namespace: str, deployment: str, owner_uid: str) -> int | None:
        assert owner_uid == self.body["metadata"]["uid"]
        if self.fail_next:
            self.fail_next = False
            raise ApiError(500, "Internal Server Error", "")
        return self.deployments.get(deployment)

    def scale(self, namespace: str, deployment: str, replicas: int, owner_uid: str) -> None:
        assert owner_uid == self.body["metadata"]["uid"]
        self.deployments[deployment] = replicas
        self.scaled.append((deployment, replicas))

    def write_status(self, fleet: Mapping[str, Any], autoscaling: list[dict[str, Any]]) -> None:
        self.statuses.append(autoscaling)

    def event(self, fleet: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(loop_scope="function")  # aiohttp binds a session to its loop
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as c:
        yield c


def make(cluster: FakeCluster, client: aiohttp.ClientSession, clock: Clock, urls: list[str]) -> Autoscaler:
    async def discover(_: ModelFleet) -> list[str]:
        return list(urls)

    settings = AutoscalerSettings(interval=5, status_period=15)
    metrics = AutoscalerMetrics(CollectorRegistry())
    return Autoscaler(settings, cluster, client, metrics=metrics, discover=discover, clock=clock)


async def ticks(scaler: Autoscaler, clock: Clock, count: int, step: float = 5.0) -> None:
    for _ in range(count):
        clock.now += step
        await scaler.tick()


def test_only_builtin_models_with_room_are_autoscaled() -> None:
    hpa = {**MODEL, "name": "hpa", "replicas": {"min": 1, "max": 3}, "autoscaling": {"mode": "hpa"}}
    fleet = ModelFleet.from_body(fleet_body(MODEL, FIXED, hpa))
    assert [m.name for m in builtin_models(fleet)] == ["coder"]


async def test_router_pods_coming_and_going_under_steady_load_do_not_flap(
    client: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    with router_servers(3) as (a, b, c):
        urls = [a.url, b.url]
        cluster = FakeCluster(fleet_body(MODEL, FIXED), {"f-coder": 2, "f-fixed": 1})
        scaler = make(cluster, client, clock, urls)
        a.set("coder", in_flight=4)
        b.set("coder", in_flight=4)
        await ticks(scaler, clock, 6)
        assert cluster.scaled == []  # 8 in flight / 4 per replica = the 2 it has
        b.stop()  # a router pod goes away: its share is invisible for a while
        await ticks(scaler, clock, 6)
        c.set("coder", in_flight=4)  # ... and its replacement shows up with the load
        urls[1] = c.url
        await ticks(scaler, clock, 20)
    assert cluster.scaled == []
    assert cluster.deployments == {"f-coder": 2, "f-fixed": 1}
    assert cluster.statuses[-1][0]["routers"] == 2
    assert [s["name"] for s in cluster.statuses[-1]] == ["coder"]  # the fixed model is not autoscaled


async def test_restart_holds_replicas_for_the_delay_then_parks_at_zero(client: aiohttp.ClientSession) -> None:
    clock = Clock()
    with router_servers(1) as (a,):
        a.set("coder", in_flight=0)
        cluster = FakeCluster(fleet_body(MODEL), {"f-coder": 3})
        scaler = make(cluster, client, clock, [a.url])  # a fresh operator: no history
        await ticks(scaler, clock, 13)  # first seen at tick 1: 60 s later the delay has not passed yet
        assert cluster.scaled == []
        await ticks(scaler, clock, 1)
    assert cluster.scaled == [("f-coder", 0)]
    reason, message = cluster.events[-1]
    assert reason == "ScaleDown"
    assert "3 -> 0 replicas" in message and "target 4 per replica" in message
    assert cluster.statuses[-1][0]["desiredReplicas"] == 0
    assert cluster.statuses[-1][0]["lastScaleTime"]


async def test_held_request_at_zero_scales_to_one_on_the_next_tick(client: aiohttp.ClientSession) -> None:
    clock = Clock()
    with router_servers(1) as (a,):
        cluster = FakeCluster(fleet_body(MODEL), {"f-coder": 0})
        scaler = make(cluster, client, clock, [a.url])
        await ticks(scaler, clock, 3)
        a.set("coder", queued=1)
        await ticks(scaler, clock, 1)
        assert cluster.scaled == [("f-coder", 1)]
        assert cluster.events[-1][0] == "ColdStart"
        await ticks(scaler, clock, 2)  # still held while the pod starts: counted as time cold
    value = scaler.metrics.registry.get_sample_value(
        "flotilla_autoscaler_cold_seconds_total", {"namespace": NS, "fleet": FLEET, "model": "coder"}
    )
    assert value == 10.0  # held on three ticks 5 s apart: two intervals known cold


async def test_all_routers_unreachable_holds_and_a_missing_deployment_is_skipped(
    client: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    down = RouterMetricsServer().start()
    down.stop()
    cluster = FakeCluster(fleet_body(MODEL), {})
    scaler = make(cluster, client, clock, [down.url])
    await ticks(scaler, clock, 2)
    assert cluster.statuses == []  # no Deployment yet: nothing to decide
    cluster.deployments["f-coder"] = 2
    await ticks(scaler, clock, 30)
    assert cluster.scaled == []
    assert cluster.statuses[-1][0]["reason"] == "NoData"
    errors = scaler.metrics.registry.get_sample_value(
        "flotilla_autoscaler_router_scrape_errors_total", {"namespace": NS, "fleet": FLEET}
    )
    assert errors == 32


async def test_status_is_rate_limited_unless_replicas_change(client: aiohttp.ClientSession) -> None:
    clock = Clock()
    with router_servers(1) as (a,):
        cluster = FakeCluster(fleet_body(MODEL), {"f-coder": 1})
        scaler = make(cluster, client, clock, [a.url])
        for load in (1, 2, 3, 2, 1, 2, 3, 2, 1):  # load changes every tick, replicas do not
            a.set("coder", in_flight=load)
            await ticks(scaler, clock, 1)
        assert len(cluster.statuses) == 3  # 45 s at most one per 15 s
        a.set("coder", in_flight=40)
        await ticks(scaler, clock, 1)
        assert len(cluster.statuses) == 4  # a scale writes at once
        assert cluster.statuses[-1][0]["desiredReplicas"] == 4


async def test_a_failed_api_call_keeps_the_models_history(client: aiohttp.ClientSession) -> None:
    clock = Clock()
    with router_servers(1) as (a,):
        a.set("coder", in_flight=0)
        cluster = FakeCluster(fleet_body(MODEL), {"f-coder": 2})
        scaler = make(cluster, client, clock, [a.url])
        await ticks(scaler, clock, 6)
        cluster.fail_next = True  # the apiserver hiccups once
        await ticks(scaler, clock, 7)
        assert cluster.scaled == []
        await ticks(scaler, clock, 1)  # 65 s after first sight, as without the failure
    assert cluster.scaled == [("f-coder", 0)]


def packed(name: str, target: int) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"uri": f"pvc://gguf/{name}.gguf"},
        "runtime": "llamacpp",
        "placement": {"pack": "auto", "memory": "250Mi"},
        "replicas": {"min": 1, "max": 4},
        "autoscaling": {"targetInFlight": target, "window": "10s", "scaleDownDelay": "30s"},
    }


async def test_a_pack_is_scaled_once_to_its_busiest_models_need(client: aiohttp.ClientSession) -> None:
    """Each pack pod serves one replica of each of its models: 6 in flight for a (target 2) needs 3 pods,
    1 for b (target 4) needs 1: the pack gets 3, then goes back to 1 when the load is gone."""
    clock = Clock()
    with router_servers(1) as (router,):
        cluster = FakeCluster(fleet_body(packed("a", 2), packed("b", 4)), {"f-pack-auto-1": 1})
        scaler = make(cluster, client, clock, [router.url])
        router.set("a", in_flight=6)
        router.set("b", in_flight=1)
        await ticks(scaler, clock, 3)
        assert cluster.scaled == [("f-pack-auto-1", 3)]  # no Deployment of a model of its own is touched
        reason, message = cluster.events[-1]
        assert reason == "ScaleUp" and "pack auto-1 (a, b): 1 -> 3 replicas, as model a needs" in message
        entries = {s["name"]: s for s in cluster.statuses[-1]}
        assert (entries["a"]["desiredReplicas"], entries["b"]["desiredReplicas"]) == (3, 1)
        router.set("a", in_flight=0)
        router.set("b", in_flight=0)
        await ticks(scaler, clock, 12)
    replicas = [count for name, count in cluster.scaled if name == "f-pack-auto-1"]
    assert len(replicas) == len(cluster.scaled)  # the pack only
    assert replicas[0] == 3 and replicas[-1] == 1  # down as the window's average falls, to the members' min
    assert replicas == sorted(replicas, reverse=True)
    assert cluster.deployments == {"f-pack-auto-1": 1}
