"""Read the shadow and capture counters of a fleet's router pods and write ``status.candidates`` and
``status.traces`` (the I/O half of promotion and of the trace count; the rules are ``deciding`` and
``counting``).

Router pods are found like the autoscaler and the spend collector find them (the admin Service's
EndpointSlices, ``FLOTILLA_AUTOSCALER_HOST_ALIASES`` for an operator outside the pod network). A router that
does not answer is skipped: its increase is counted on its next answer. ``status.candidates`` and
``status.traces`` are written by their own field manager with a merge patch, beside the reconciler's
server-side-applied status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from flotilla.api import fleet as fleet_api
from flotilla.api.status import CandidateStatus, TraceStatus
from flotilla.autoscaler import discovering
from flotilla.autoscaler.actuating import Cluster
from flotilla.promoting import counting, deciding, tallies
from flotilla.reconcile import kube as kubeapi
from flotilla.render import naming, trained

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
    """Field manager of status.candidates and status.traces."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One pass over a fleet: the status entries written (None: unchanged) and the decisions made."""

    candidates: list[CandidateStatus] | None
    decisions: list[deciding.Decision]
    traces: list[TraceStatus] | None = None


@dataclasses.dataclass(frozen=True)
class Samples:
    """What one pass read from the routers."""

    shadows: list[tallies.Sample] = dataclasses.field(default_factory=list)
    captured: list[counting.Captured] = dataclasses.field(default_factory=list)


async def _read(client: aiohttp.ClientSession, url: str) -> Samples:
    async with client.get(url.rstrip("/") + "/metrics") as response:
        response.raise_for_status()
        text = await response.text()
        return Samples(tallies.parse(text), counting.parse(text))


async def read_samples(
    settings: PromotionSettings, cluster: Cluster, client: aiohttp.ClientSession, namespace: str, service: str
) -> Samples:
    """Every readable router pod's shadow and capture samples."""
    urls = await asyncio.to_thread(cluster.router_endpoints, namespace, service)
    if settings.host_aliases:
        urls = discovering.aliased(urls, dict(settings.host_aliases))
    results = await asyncio.gather(*(_read(client, u) for u in urls), return_exceptions=True)
    samples = Samples()
    for url, result in zip(urls, results, strict=True):
        if isinstance(result, aiohttp.ClientError | TimeoutError | ValueError):
            log.debug("router counters from %s skipped: %r", url, result)
        elif isinstance(result, BaseException):
            raise result
        else:
            samples.shadows.extend(result.shadows)
            samples.captured.extend(result.captured)
    return samples


async def collect(
    settings: PromotionSettings, cluster: Cluster, body: Mapping[str, Any], now: str
) -> Outcome:
    """Read the fleet's routers, advance its candidates and trace counts, and write ``status.candidates``
    and ``status.traces`` if they changed. InvalidSpecError for a fleet that does not parse; ApiError when
    the status cannot be written."""
    fleet = trained.served(fleet_api.ModelFleet.from_body(body))
    samples = Samples()
    if deciding.shadows(fleet) or counting.capturing(fleet):  # else only stale entries are left to clear
        timeout = aiohttp.ClientTimeout(total=settings.scrape_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            samples = await read_samples(
                settings, cluster, client, fleet.namespace, naming.router_admin_name(fleet)
            )
    entries, decisions = deciding.advance(fleet, samples.shadows, now)
    status = body.get("status") or {}
    stored = status.get("candidates") or []
    wire = [e.to_wire() for e in entries]
    stored_traces = fleet.status.traces if fleet.status is not None and fleet.status.traces else []
    traces = counting.advance(fleet, samples.captured, stored_traces)
    traces_wire = [t.to_wire() for t in traces]
    changed: dict[str, Any] = {}
    if wire != stored:
        changed |= {"candidates": wire or None, "candidatesSummary": deciding.summary(entries) or None}
    if traces_wire != (status.get("traces") or []):
        changed["traces"] = traces_wire or None
    if not changed:
        return Outcome(None, decisions)
    patch = {"status": changed}
    path = kubeapi.custom_path(
        fleet_api.GROUP, fleet_api.VERSION, fleet_api.PLURAL, fleet.namespace, fleet.name
    )
    await asyncio.to_thread(cluster.kube.merge_patch, path + "/status", patch, settings.field_manager)
    return Outcome(
        entries if "candidates" in changed else None, decisions, traces if "traces" in changed else None
    )
