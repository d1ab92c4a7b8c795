"""Read the shadow counters of a fleet's router pods and write ``status.candidates`` (the I/O half of
promotion; the rule is ``deciding``).

Router pods are found like the autoscaler and the spend collector find them (the admin Service's
EndpointSlices, ``FLOTILLA_AUTOSCALER_HOST_ALIASES`` for an operator outside the pod network). A router that
does not answer is skipped: its increase is counted on its next answer. ``status.candidates`` is written by
its own field manager with a merge patch, beside the reconciler's server-side-applied status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from flotilla.api import fleet as fleet_api
from flotilla.api.status import CandidateStatus
from flotilla.autoscaler import discovering
from flotilla.autoscaler.actuating import Cluster
from flotilla.promoting import deciding, tallies
from flotilla.reconcile import kube as kubeapi
from flotilla.render import naming

log = logging.getLogger(__name__)
FIELD_MANAGER = "flotilla-promotion"


@dataclasses.dataclass(frozen=True)
class PromotionSettings:
    """How the routers are read."""

    scrape_timeout: float = 2.0
    """Seconds a router pod may take to answer."""
    host_aliases: tuple[tuple[str, str], ...] = ()
    """As the autoscaler's (``FLOTILLA_AUTOSCALER_HOST_ALIASES``)."""
    field_manager: str = FIELD_MANAGER
    """Field manager of status.candidates."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One pass over a fleet: the status entries written (None: unchanged) and the decisions made."""

    candidates: list[CandidateStatus] | None
    decisions: list[deciding.Decision]


async def _read(client: aiohttp.ClientSession, url: str) -> list[tallies.Sample]:
    async with client.get(url.rstrip("/") + "/metrics") as response:
        response.raise_for_status()
        return tallies.parse(await response.text())


async def read_samples(
    settings: PromotionSettings, cluster: Cluster, client: aiohttp.ClientSession, namespace: str, service: str
) -> list[tallies.Sample]:
    """Every readable router pod's shadow samples."""
    urls = await asyncio.to_thread(cluster.router_endpoints, namespace, service)
    if settings.host_aliases:
        urls = discovering.aliased(urls, dict(settings.host_aliases))
    results = await asyncio.gather(*(_read(client, u) for u in urls), return_exceptions=True)
    samples: list[tallies.Sample] = []
    for url, result in zip(urls, results, strict=True):
        if isinstance(result, aiohttp.ClientError | TimeoutError | ValueError):
            log.debug("router shadow counters from %s skipped: %r", url, result)
        elif isinstance(result, BaseException):
            raise result
        else:
            samples += result
    return samples


async def collect(
    settings: PromotionSettings, cluster: Cluster, body: Mapping[str, Any], now: str
) -> Outcome:
    """Read the fleet's routers, advance its candidates and write ``status.candidates`` if they changed.
    InvalidSpecError for a fleet that does not parse; ApiError when the status cannot be written."""
    fleet = fleet_api.ModelFleet.from_body(body)
    samples: list[tallies.Sample] = []
    if deciding.shadows(fleet):  # else only stale entries are left to clear
        timeout = aiohttp.ClientTimeout(total=settings.scrape_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            samples = await read_samples(
                settings, cluster, client, fleet.namespace, naming.router_admin_name(fleet)
            )
    entries, decisions = deciding.advance(fleet, samples, now)
    stored = (body.get("status") or {}).get("candidates") or []
    wire = [e.to_wire() for e in entries]
    if wire == stored:
        return Outcome(None, decisions)
    patch = {"status": {"candidates": wire or None, "candidatesSummary": deciding.summary(entries) or None}}
    path = kubeapi.custom_path(
        fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL, fleet.namespace, fleet.name
    )
    await asyncio.to_thread(cluster.kube.merge_patch, path + "/status", patch, settings.field_manager)
    return Outcome(entries, decisions)
