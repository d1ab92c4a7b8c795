"""The spend collector: every ``interval``, for each fleet with ``spec.access``, read the spend counters
on its router pods' admin port, add the increases to the fleet's ledger (``ledgers``), and write the
totals to ``status.access`` (``kubectl get mf`` shows them) and to the ``<fleet>-router-spend`` ConfigMap
the routers read.

The ledger of a fleet is resumed from ``status.access`` the first time this process sees the fleet, so an
operator restart loses and repeats nothing. Router pods are found like the autoscaler finds them (the
admin Service's EndpointSlices). The ConfigMap is owned by the fleet (garbage-collected with it) but not
labelled as a rendered child, so the reconciler neither prunes nor resets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from flotilla import errors
from flotilla.accounting import ledgers
from flotilla.api import fleet as fleet_api
from flotilla.api.spend import SPEND_KEY, month_of
from flotilla.autoscaler import discovering
from flotilla.autoscaler.actuating import Cluster
from flotilla.reconcile import kube as kubeapi
from flotilla.reconcile import owners
from flotilla.render import naming

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SpendSettings:
    """How often and how the collector reads the routers."""

    interval: float = 15.0
    """Seconds between reads (``FLOTILLA_SPEND_INTERVAL``): with the kubelet's ConfigMap sync, the lag
    after which a replica sees the others' spend."""
    scrape_timeout: float = 2.0
    """Seconds a router pod may take to answer."""
    namespaces: tuple[str, ...] = ()
    """Namespaces whose fleets are read; empty: all."""
    host_aliases: tuple[tuple[str, str], ...] = ()
    """As the autoscaler's (``FLOTILLA_AUTOSCALER_HOST_ALIASES``): for an operator outside the pod network."""
    field_manager: str = "flotilla-spend"
    """Field manager of status.access and of the spend ConfigMap."""


def load(
    environ: Mapping[str, str] | None = None,
    namespaces: tuple[str, ...] = (),
    host_aliases: tuple[tuple[str, str], ...] = (),
) -> SpendSettings:
    """Settings from ``FLOTILLA_SPEND_INTERVAL``; a bad number is a UsageError."""
    env = os.environ if environ is None else environ
    interval = env.get("FLOTILLA_SPEND_INTERVAL", "")
    settings = SpendSettings(namespaces=namespaces, host_aliases=host_aliases)
    if not interval:
        return settings
    try:
        seconds = float(interval)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise errors.UsageError(f"FLOTILLA_SPEND_INTERVAL must be a number of seconds > 0, not {interval!r}")
    return dataclasses.replace(settings, interval=seconds)


def spend_config_map(fleet: Mapping[str, Any], ledger: ledgers.FleetLedger) -> dict[str, Any]:
    """The ``<fleet>-router-spend`` ConfigMap (owned by the fleet, not labelled as a rendered child)."""
    meta = fleet["metadata"]
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{meta['name']}-router-spend",  # naming.router_spend_name
            "namespace": meta["namespace"],
            "labels": {naming.PART_OF: "flotilla", naming.FLEET: meta["name"], naming.COMPONENT: "spend"},
        },
        "data": {SPEND_KEY: json.dumps(ledger.spend_file().model_dump(), sort_keys=True)},
    }
    return owners.owned(manifest, fleet)


class Collector:
    """One per operator; ``tick()`` reads every fleet with access once."""

    def __init__(self, settings: SpendSettings, cluster: Cluster, client: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.cluster = cluster
        self.client = client
        self.ledgers: dict[tuple[str, str], ledgers.FleetLedger] = {}

    async def _read(self, url: str) -> list[ledgers.Sample]:
        async with self.client.get(url.rstrip("/") + "/metrics") as response:
            response.raise_for_status()
            return ledgers.parse(await response.text())

    async def _samples(self, namespace: str, service: str) -> list[ledgers.Sample]:
        urls = await asyncio.to_thread(self.cluster.router_endpoints, namespace, service)
        if self.settings.host_aliases:
            urls = discovering.aliased(urls, dict(self.settings.host_aliases))
        results = await asyncio.gather(*(self._read(u) for u in urls), return_exceptions=True)
        samples: list[ledgers.Sample] = []
        for url, result in zip(urls, results, strict=True):
            if isinstance(result, aiohttp.ClientError | TimeoutError | ValueError):
                log.debug("router spend from %s skipped: %r", url, result)  # counted on its next answer
            elif isinstance(result, BaseException):
                raise result
            else:
                samples += result
        return samples

    async def tick_fleet(self, body: Mapping[str, Any], now: float) -> None:
        fleet = fleet_api.ModelFleet.from_body(body)
        access = fleet.spec.access
        if access is None:
            return
        key = (fleet.namespace, fleet.name)
        month = month_of()
        stored = (body.get("status") or {}).get("access")
        ledger = self.ledgers.get(key)
        if ledger is None:
            ledger = self.ledgers[key] = ledgers.FleetLedger.from_status(stored, month, now)
        samples = await self._samples(fleet.namespace, naming.router_admin_name(fleet))
        changed = ledger.observe(samples, month, now)
        status = ledger.to_status({p.name: p.monthly_budget_usd for p in access.policies})
        if not changed and stored == status:
            return
        # The ConfigMap first: a status that counts more than the routers know is never written alone.
        await asyncio.to_thread(self._apply, spend_config_map(body, ledger))
        await asyncio.to_thread(self._write_status, body, status)

    def _apply(self, manifest: dict[str, Any]) -> None:
        self.cluster.kube.apply(manifest, self.settings.field_manager)

    def _write_status(self, fleet: Mapping[str, Any], status: dict[str, Any]) -> None:
        meta = fleet["metadata"]
        path = kubeapi.custom_path(
            fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL, meta["namespace"], meta["name"]
        )
        self.cluster.kube.merge_patch(
            path + "/status", {"status": {"access": status}}, self.settings.field_manager
        )

    async def tick(self) -> None:
        """Every fleet once; a failing fleet does not stop the others."""
        bodies = await asyncio.to_thread(self.cluster.list_fleets, self.settings.namespaces)
        now = time.monotonic()
        seen = set()
        for body in bodies:
            meta = body.get("metadata", {})
            seen.add((meta.get("namespace"), meta.get("name")))
            try:
                await self.tick_fleet(body, now)
            except errors.InvalidSpecError:
                continue
            except (kubeapi.ApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning(
                    "spend of fleet %s/%s not collected: %s", meta.get("namespace"), meta.get("name"), exc
                )
        for key in set(self.ledgers) - seen:
            del self.ledgers[key]


async def run(settings: SpendSettings, cluster: Cluster, *, stop: asyncio.Event | None = None) -> None:
    """Tick every ``settings.interval`` seconds until ``stop`` is set (or the task is cancelled)."""
    stop = stop or asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=settings.scrape_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        collector = Collector(settings, cluster, client)
        while not stop.is_set():
            started = time.monotonic()
            try:
                await collector.tick()
            except Exception:  # the loop must outlive any one bad tick
                log.exception("spend collection failed; trying again in %.0fs", settings.interval)
            pause = max(0.0, settings.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
