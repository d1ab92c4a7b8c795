"""Reading load from the router pods: GET each pod's ``/metrics`` and sum the in-flight and queued gauges
per model.

Names come from ``flotilla.router.metrics`` (the router's side of the contract). A pod that errors, times
out or serves something unparsable is left out of that tick and reported in :attr:`Scrape.failed`; the
decision uses the pods that answered, so a router pod coming or going does not make replicas flap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

IN_FLIGHT = "flotilla_router_in_flight"
"""Gauge: requests the model is serving now, per router pod (label ``model``)."""
QUEUED = "flotilla_router_queued"
"""Gauge: requests a router pod holds while the model is cold (label ``model``)."""


@dataclasses.dataclass(frozen=True)
class ModelLoad:
    """One model's demand, summed over the router pods that answered."""

    in_flight: float = 0.0
    queued: float = 0.0

    @property
    def total(self) -> float:
        """In-flight plus queued: what replicas must absorb."""
        return self.in_flight + self.queued

    def __add__(self, other: ModelLoad) -> ModelLoad:
        return ModelLoad(self.in_flight + other.in_flight, self.queued + other.queued)


@dataclasses.dataclass(frozen=True)
class Scrape:
    """One tick's reading of every router pod."""

    loads: dict[str, ModelLoad]
    """Model name → load; a model no router reported has no entry (read it as zero)."""
    answered: int
    """Router pods whose metrics were read."""
    failed: tuple[str, ...] = ()
    """Endpoints skipped this tick, each with why."""

    def load(self, model: str) -> ModelLoad:
        """The model's load, zero if no router mentioned it."""
        return self.loads.get(model, ModelLoad())


def parse(text: str) -> dict[str, ModelLoad]:
    """Per-model load from one Prometheus text exposition; ValueError if it is not one."""
    loads: dict[str, ModelLoad] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (IN_FLIGHT, QUEUED):
            continue
        for sample in family.samples:
            model = sample.labels.get("model")
            if model is None or sample.name != family.name:
                continue
            value = max(0.0, float(sample.value))
            part = ModelLoad(in_flight=value) if family.name == IN_FLIGHT else ModelLoad(queued=value)
            loads[model] = loads.get(model, ModelLoad()) + part
    return loads


def combine(readings: Iterable[dict[str, ModelLoad]]) -> dict[str, ModelLoad]:
    """Sum per-pod readings into fleet-wide load per model."""
    total: dict[str, ModelLoad] = {}
    for reading in readings:
        for model, load in reading.items():
            total[model] = total.get(model, ModelLoad()) + load
    return total


async def _read(client: httpx.AsyncClient, endpoint: str, path: str) -> dict[str, ModelLoad]:
    response = await client.get(endpoint.rstrip("/") + path)
    response.raise_for_status()
    return parse(response.text)


async def scrape(client: httpx.AsyncClient, endpoints: Sequence[str], path: str = "/metrics") -> Scrape:
    """Read every endpoint concurrently (the client's timeout bounds each); skip the ones that fail."""
    results = await asyncio.gather(*(_read(client, e, path) for e in endpoints), return_exceptions=True)
    readings: list[dict[str, ModelLoad]] = []
    failed: list[str] = []
    for endpoint, result in zip(endpoints, results, strict=True):
        if isinstance(result, httpx.HTTPError | ValueError):
            failed.append(f"{endpoint}: {type(result).__name__}: {result}".rstrip(": "))
            log.debug("router metrics from %s skipped: %r", endpoint, result)
        elif isinstance(result, BaseException):
            raise result
        else:
            readings.append(result)
    return Scrape(loads=combine(readings), answered=len(readings), failed=tuple(failed))
