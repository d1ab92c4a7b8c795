"""Reading load from the router pods: GET each pod's ``/metrics``, sum the in-flight and queued gauges per
model, and turn each pod's cold-requests counter into demand by its increase since the previous scrape.

The names repeat ``flotilla.router.metrics`` (the router's side of the contract) rather than importing it,
so the operator does not load the router. A pod that errors, times out or serves something unparsable is
left out of that tick and reported in :attr:`Scrape.failed`; the decision uses the pods that answered, so a
router pod coming or going does not make replicas flap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

IN_FLIGHT = "flotilla_router_in_flight"
"""Gauge: requests the model is serving now, per router pod (label ``model``)."""
QUEUED = "flotilla_router_queued"
"""Gauge: requests a router pod holds while the model is cold (label ``model``)."""
COLD_REQUESTS = "flotilla_router_cold_requests_total"
"""Counter: requests that found the model with no ready pod, held or not (label ``model``)."""


@dataclasses.dataclass(frozen=True)
class ModelLoad:
    """One model's demand, summed over the router pods that answered."""

    in_flight: float = 0.0
    queued: float = 0.0
    cold_requests: float = 0.0
    """The cold-requests counter's raw value: per pod a running total, meaningful only as a
    :class:`ColdCounters` delta between two scrapes of the same pod (summed over pods it means nothing)."""

    @property
    def total(self) -> float:
        """In-flight plus queued: what replicas must absorb."""
        return self.in_flight + self.queued

    def __add__(self, other: ModelLoad) -> ModelLoad:
        return ModelLoad(
            self.in_flight + other.in_flight,
            self.queued + other.queued,
            self.cold_requests + other.cold_requests,
        )


@dataclasses.dataclass(frozen=True)
class Scrape:
    """One tick's reading of every router pod."""

    loads: dict[str, ModelLoad]
    """Model name → load; a model no router reported has no entry (read it as zero)."""
    answered: int
    """Router pods whose metrics were read."""
    failed: tuple[str, ...] = ()
    """Endpoints skipped this tick, each with why."""
    pods: Mapping[str, dict[str, ModelLoad]] = dataclasses.field(default_factory=dict)
    """Endpoint → its own reading, for the pods that answered (the cold counters are per pod)."""

    def load(self, model: str) -> ModelLoad:
        """The model's load, zero if no router mentioned it."""
        return self.loads.get(model, ModelLoad())


def parse(text: str) -> dict[str, ModelLoad]:
    """Per-model load from one Prometheus text exposition; ValueError if it is not one."""
    loads: dict[str, ModelLoad] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:  # a counter's samples are named <family>_total and <family>_created
            field = _FIELDS.get(sample.name)
            model = sample.labels.get("model")
            if field is None or model is None:
                continue
            part = ModelLoad(**{field: max(0.0, float(sample.value))})
            loads[model] = loads.get(model, ModelLoad()) + part
    return loads


_FIELDS = {IN_FLIGHT: "in_flight", QUEUED: "queued", COLD_REQUESTS: "cold_requests"}


def combine(readings: Iterable[dict[str, ModelLoad]]) -> dict[str, ModelLoad]:
    """Sum per-pod readings into fleet-wide load per model."""
    total: dict[str, ModelLoad] = {}
    for reading in readings:
        for model, load in reading.items():
            total[model] = total.get(model, ModelLoad()) + load
    return total


async def _read(client: aiohttp.ClientSession, endpoint: str, path: str) -> dict[str, ModelLoad]:
    async with client.get(endpoint.rstrip("/") + path) as response:
        response.raise_for_status()
        return parse(await response.text())


SKIPPED = (aiohttp.ClientError, TimeoutError, ValueError)
"""What a router pod that cannot be read raises: refused, reset, timed out, an error status, not metrics."""


async def scrape(client: aiohttp.ClientSession, endpoints: Sequence[str], path: str = "/metrics") -> Scrape:
    """Read every endpoint concurrently (the session's timeout bounds each); skip the ones that fail.

    aiohttp rather than httpx: kopf already loads it, and a second HTTP stack (its import and its TLS
    context) is a few MiB of the operator's memory for plain-HTTP scrapes.
    """
    results = await asyncio.gather(*(_read(client, e, path) for e in endpoints), return_exceptions=True)
    pods: dict[str, dict[str, ModelLoad]] = {}
    failed: list[str] = []
    for endpoint, result in zip(endpoints, results, strict=True):
        if isinstance(result, SKIPPED):
            failed.append(f"{endpoint}: {type(result).__name__}: {result}".rstrip(": "))
            log.debug("router metrics from %s skipped: %r", endpoint, result)
        elif isinstance(result, BaseException):
            raise result
        else:
            pods[endpoint] = result
    return Scrape(loads=combine(pods.values()), answered=len(pods), failed=tuple(failed), pods=pods)


class ColdCounters:
    """Per router pod, the last cold-requests counter values seen; :meth:`update` returns the increase.

    Hand-written because it is Prometheus' ``increase()`` over one scrape interval, with the rules a
    controller (not a query) needs:

    - a pod seen for the first time only sets its baseline: after an operator restart every pod is new,
      and its lifetime total is old demand, not this tick's (the price: cold requests a brand-new router
      pod took before its first scrape are not counted; the held gauge still covers any still held);
    - a model a known pod did not report before counts from 0 (the router creates the labelled counter
      on that model's first cold request);
    - a value below the baseline means the pod restarted under the same address (the counter began again
      at 0): the new value is the increase;
    - a pod that failed to answer keeps its baseline (its next answer is compared with it); a pod no longer
      among the endpoints is forgotten.
    """

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, float]] = {}

    def update(self, scrape: Scrape, endpoints: Iterable[str]) -> dict[str, float]:
        """Model → cold requests since the previous scrape, summed over the pods; ``endpoints`` are all
        the pods discovered this tick (answered or not)."""
        increase: dict[str, float] = {}
        for endpoint, reading in scrape.pods.items():
            now = {model: load.cold_requests for model, load in reading.items() if load.cold_requests}
            before = self._seen.get(endpoint)
            self._seen[endpoint] = now
            if before is None:
                continue
            for model, value in now.items():
                delta = value - before.get(model, 0.0)
                if delta < 0:  # restarted: counting again from 0
                    delta = value
                if delta > 0:
                    increase[model] = increase.get(model, 0.0) + delta
        keep = set(endpoints)
        for endpoint in set(self._seen) - keep:
            del self._seen[endpoint]
        return increase

    def known(self) -> set[str]:
        """Endpoints holding a baseline."""
        return set(self._seen)
