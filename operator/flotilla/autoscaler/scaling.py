"""The built-in autoscaler loop: each tick, for every fleet with `builtin` models, read the router pods'
load, decide per model (:mod:`.recommending`), patch the Deployment's scale, and record the decision as an
Event, in status.autoscaling and in Prometheus metrics.

State (load windows, recommendation history) lives in memory, keyed by namespace/fleet/model; after an
operator restart the recommender holds the replicas it finds for a full scale-down delay, so a restart
never causes a scale-down (see ``Recommender.decide``). Each fleet also keeps its router pods' last
cold-requests counter values (:class:`~flotilla.autoscaler.scraping.ColdCounters`), so a request that
found a model cold between two scrapes still counts as demand on the next tick.

A packed model (``flotilla.packing``) has no Deployment of its own: each pod of its pack serves one
replica of every model of the pack, so the pack needs as many pods as its busiest model needs replicas.
Each packed model is decided on as usual against the pack's replicas, and the pack is scaled once to the
largest of its models' decisions (within the largest of their bounds).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import aiohttp

from flotilla import errors
from flotilla.api import status as status_api
from flotilla.api.common import parse_duration
from flotilla.api.fleet import ModelFleet, ModelSpec
from flotilla.autoscaler import discovering, scraping
from flotilla.autoscaler.metrics import AutoscalerMetrics
from flotilla.autoscaler.recommending import Decision, Policy, Recommender
from flotilla.autoscaler.settings import AutoscalerSettings
from flotilla.packing import plans
from flotilla.reconcile.kube import ApiError
from flotilla.render import naming, packs, trained

log = logging.getLogger(__name__)

Discover = Callable[[ModelFleet], Awaitable[list[str]]]
"""Router pod base URLs of a fleet (EndpointSlices in the cluster; a fixed list in tests)."""
Key = tuple[str, str, str]
"""(namespace, fleet, model)."""


class ClusterAPI(Protocol):
    """What the loop needs from the cluster (:class:`flotilla.autoscaler.actuating.Cluster` in the
    operator; an in-memory fake in unit tests)."""

    def list_fleets(self, namespaces: Sequence[str] = ()) -> list[dict[str, Any]]: ...
    def router_endpoints(self, namespace: str, service: str) -> list[str]: ...
    def replicas(self, namespace: str, deployment: str, owner_uid: str) -> int | None: ...
    def scale(self, namespace: str, deployment: str, replicas: int, owner_uid: str) -> None: ...
    def write_status(self, fleet: Mapping[str, Any], autoscaling: list[dict[str, Any]]) -> None: ...
    def event(self, fleet: Mapping[str, Any], type_: str, reason: str, message: str) -> None: ...


def policy_for(model: ModelSpec) -> Policy:
    """The arithmetic's view of a model's replicas and autoscaling spec."""
    scaling = model.autoscaling
    return Policy(
        min_replicas=model.replicas.min,
        max_replicas=model.replicas.upper,
        target_in_flight=float(scaling.target_in_flight),
        window=parse_duration(scaling.window),
        up_delay=parse_duration(scaling.scale_up_delay),
        down_delay=parse_duration(scaling.scale_down_delay),
    )


def builtin_models(fleet: ModelFleet) -> list[ModelSpec]:
    """Models the built-in autoscaler owns: mode builtin with room to scale (min < max)."""
    return [m for m in fleet.spec.models if m.autoscaled and m.autoscaling.mode == "builtin"]


@dataclasses.dataclass
class _ModelState:
    recommender: Recommender
    last_tick: float | None = None
    held: bool = False
    last_scale_time: str | None = None


@dataclasses.dataclass
class _FleetState:
    written: list[dict[str, Any]] | None = None
    written_at: float = float("-inf")
    cold: scraping.ColdCounters = dataclasses.field(default_factory=scraping.ColdCounters)


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Autoscaler:
    """One per operator. ``tick()`` does one round over every fleet; :func:`run` calls it periodically."""

    def __init__(
        self,
        settings: AutoscalerSettings,
        cluster: ClusterAPI,
        client: aiohttp.ClientSession,
        *,
        metrics: AutoscalerMetrics | None = None,
        discover: Discover | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.client = client
        self.metrics = metrics or AutoscalerMetrics()
        self.discover = discover or self._discover_endpoint_slices
        self.clock = clock
        self._models: dict[Key, _ModelState] = {}
        self._fleets: dict[tuple[str, str], _FleetState] = {}

    async def _discover_endpoint_slices(self, fleet: ModelFleet) -> list[str]:
        urls = await asyncio.to_thread(
            self.cluster.router_endpoints, fleet.namespace, naming.router_admin_name(fleet)
        )
        return (
            discovering.aliased(urls, dict(self.settings.host_aliases))
            if self.settings.host_aliases
            else urls
        )

    async def tick(self) -> None:
        """One round: every fleet in the watched namespaces; a failing fleet does not stop the others."""
        bodies = await asyncio.to_thread(self.cluster.list_fleets, self.settings.namespaces)
        seen: set[Key] = set()
        for body in bodies:
            meta = body.get("metadata", {})
            where = f"{meta.get('namespace')}/{meta.get('name')}"
            try:
                seen |= await self.tick_fleet(body)
            except errors.InvalidSpecError as exc:
                log.debug("fleet %s not autoscaled: %s", where, exc)
            except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("autoscaling fleet %s failed this tick: %s", where, exc)
                # keep its models' windows and history: one failed call is not a reason to start over
                seen |= {k for k in self._models if (k[0], k[1]) == (meta.get("namespace"), meta.get("name"))}
        for key in set(self._models) - seen:
            del self._models[key]
            self.metrics.forget(*key)
        for fleet_key in set(self._fleets) - {(ns, f) for ns, f, _ in seen}:
            del self._fleets[fleet_key]

    async def tick_fleet(self, body: Mapping[str, Any]) -> set[Key]:
        """Decide and act for one fleet's builtin models; returns their keys."""
        fleet = trained.served(ModelFleet.from_body(body))
        models = builtin_models(fleet)
        if not models:
            return set()
        endpoints = await self.discover(fleet)
        scrape = await scraping.scrape(self.client, endpoints, self.settings.metrics_path)
        if scrape.failed:
            self.metrics.router_errors.labels(fleet.namespace, fleet.name).inc(len(scrape.failed))
            log.info("fleet %s/%s: skipped router pods %s", fleet.namespace, fleet.name, scrape.failed)
        now = self.clock()
        fleet_state = self._fleets.setdefault((fleet.namespace, fleet.name), _FleetState())
        cold = fleet_state.cold.update(scrape, endpoints)
        plan = plans.plan(fleet.spec)
        entries: list[dict[str, Any]] = []
        keys: set[Key] = set()
        scaled = False
        by_pack: dict[str, list[status_api.ModelAutoscaling]] = {}
        kuberay = {p.name for p in fleet.spec.packs if p.engine == "kuberay"}
        for model in models:
            key = (fleet.namespace, fleet.name, model.name)
            pod = plan.pod_of(model.name)
            if pod is not None and pod.pack in kuberay:
                continue  # a RayService, not a Deployment: not scaled by the built-in autoscaler yet
            deployment = (
                naming.model_deployment_name(fleet, model)
                if pod is None
                else naming.pack_name(fleet, pod.name)
            )
            entry = await self._decide(
                body, fleet, model, key, scrape, now, cold.get(model.name, 0.0), deployment, act=pod is None
            )
            if entry is None:
                continue
            if pod is not None:
                by_pack.setdefault(pod.name, []).append(entry)
            keys.add(key)
            scaled |= entry.current_replicas != entry.desired_replicas
            entries.append(entry.to_wire())
        for pod in plan.pods:
            if pod.name in by_pack:
                await self._scale_pack(body, fleet, pod, by_pack[pod.name])
        await self._write_status(body, fleet, entries, now, force=scaled)
        return keys

    async def _scale_pack(
        self,
        body: Mapping[str, Any],
        fleet: ModelFleet,
        pod: plans.PackPod,
        decided: list[status_api.ModelAutoscaling],
    ) -> None:
        """Scale a pack to its busiest model's decision, within its members' largest bounds."""
        members = packs.members(fleet, pod)
        current = decided[0].current_replicas
        busiest = max(decided, key=lambda e: (e.desired_replicas, e.name))
        desired = min(packs.max_replicas(members), max(packs.min_replicas(members), busiest.desired_replicas))
        if desired == current:
            return
        deployment = naming.pack_name(fleet, pod.name)
        uid = str(body["metadata"]["uid"])
        await asyncio.to_thread(self.cluster.scale, fleet.namespace, deployment, desired, uid)
        for entry in decided:
            self._models[(fleet.namespace, fleet.name, entry.name)].last_scale_time = _utc_now()
        message = (
            f"pack {pod.name} ({', '.join(pod.models)}): {current} -> {desired} replicas, as model "
            f"{busiest.name} needs ({busiest.reason}; load {busiest.load:g} in flight + queued)"
        )
        log.info("fleet %s/%s: %s", fleet.namespace, fleet.name, message)
        reason = "ScaleUp" if desired > current else "ScaleDown"
        await asyncio.to_thread(self.cluster.event, body, "Normal", reason, message)

    async def _decide(
        self,
        body: Mapping[str, Any],
        fleet: ModelFleet,
        model: ModelSpec,
        key: Key,
        scrape: scraping.Scrape,
        now: float,
        cold: float,
        deployment: str,
        act: bool = True,
    ) -> status_api.ModelAutoscaling | None:
        """The model's decision against ``deployment``'s replicas; with ``act`` (a model of its own) also
        the scaling, its Event and metrics (a packed model's pack is scaled by ``_scale_pack``)."""
        state = self._models.get(key)
        if state is None:
            state = self._models[key] = _ModelState(Recommender(policy_for(model)))
        else:
            state.recommender.retune(policy_for(model))
        uid = str(body["metadata"]["uid"])
        current = await asyncio.to_thread(self.cluster.replicas, fleet.namespace, deployment, uid)
        if current is None:
            return None  # the reconciler has not created it yet, or it is not the fleet's (NameConflict)
        load = scrape.load(model.name)
        if scrape.answered:
            state.recommender.observe(now, load.in_flight, load.queued, cold)
        decision = state.recommender.decide(now, current)
        labels = key
        if (
            load.queued > 0 and state.held and state.last_tick is not None
        ):  # held on both ticks: cold all along
            self.metrics.cold_seconds.labels(*labels).inc(max(0.0, now - state.last_tick))
        state.last_tick, state.held = now, load.queued > 0
        if decision.changed and act:
            await asyncio.to_thread(self.cluster.scale, fleet.namespace, deployment, decision.desired, uid)
            state.last_scale_time = _utc_now()
            direction = "up" if decision.desired > decision.current else "down"
            self.metrics.scale_events.labels(*labels, direction).inc()
            message = _message(model, decision, scrape.answered, cold)
            log.info("fleet %s/%s: %s", fleet.namespace, fleet.name, message)
            await asyncio.to_thread(self.cluster.event, body, "Normal", decision.reason, message)
        self.metrics.desired.labels(*labels).set(decision.desired)
        self.metrics.actual.labels(*labels).set(decision.current)
        self.metrics.load.labels(*labels).set(decision.load)
        return status_api.ModelAutoscaling(
            name=model.name,
            load=round(decision.load, 2),
            queued=load.queued,
            current_replicas=decision.current,
            desired_replicas=decision.desired,
            reason=decision.reason,
            routers=scrape.answered,
            last_scale_time=state.last_scale_time,
        )

    async def _write_status(
        self,
        body: Mapping[str, Any],
        fleet: ModelFleet,
        entries: list[dict[str, Any]],
        now: float,
        force: bool,
    ) -> None:
        """Write status.autoscaling when replicas changed, or when it changed and status_period passed."""
        state = self._fleets.setdefault((fleet.namespace, fleet.name), _FleetState())
        if entries == state.written or (not entries and state.written is None):
            return
        if not force and now - state.written_at < self.settings.status_period:
            return
        try:
            await asyncio.to_thread(self.cluster.write_status, body, entries)
        except ApiError as exc:
            log.info("fleet %s/%s: status.autoscaling not written: %s", fleet.namespace, fleet.name, exc)
            return
        state.written, state.written_at = entries, now


def _message(model: ModelSpec, decision: Decision, routers: int, cold: float) -> str:
    scaling = model.autoscaling
    found_cold = f", {cold:g} requests found it cold since the last tick" if cold > 0 else ""
    return (
        f"model {model.name}: {decision.current} -> {decision.desired} replicas ({decision.reason}); "
        f"load {decision.load:.1f} in flight + queued ({scaling.window} average over {routers} router "
        f"pods){found_cold}, target {scaling.target_in_flight} per replica, bounds {model.replicas.min}.."
        f"{model.replicas.upper}"
    )


async def run(
    settings: AutoscalerSettings,
    cluster: ClusterAPI,
    *,
    stop: asyncio.Event | None = None,
    metrics: AutoscalerMetrics | None = None,
    discover: Discover | None = None,
) -> None:
    """Tick every ``settings.interval`` seconds until ``stop`` is set (or the task is cancelled)."""
    stop = stop or asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=settings.scrape_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        scaler = Autoscaler(settings, cluster, client, metrics=metrics, discover=discover)
        while not stop.is_set():
            started = time.monotonic()
            try:
                await scaler.tick()
            except Exception:  # the loop must outlive any one bad tick (apiserver down, a bug in a fleet)
                log.exception("autoscaler tick failed; trying again in %.0fs", settings.interval)
            pause = max(0.0, settings.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
