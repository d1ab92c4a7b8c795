"""Account for one upstream request from pick to end; relay streams so a client disconnect reaches upstream.

A ``Slot`` holds the pod's outstanding count, the in-flight gauge and the breaker outcome for exactly one
attempt and releases them once. ``Stream.finish`` closes the upstream connection when the client goes away
(``serving`` cancels the relay on ``http.disconnect``; closing — not releasing — the aiohttp response drops
the socket, so the model server stops generating).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import aiohttp

from flotilla.api.routerconfig import Price
from flotilla.router import access, httpclient, pricing
from flotilla.router.breaking import STATE_VALUES
from flotilla.router.forwarding import Target
from flotilla.router.metrics import Metrics
from flotilla.router.upstreams import Endpoint

if TYPE_CHECKING:
    from flotilla.router.recording import Draft
    from flotilla.router.shadowing import Mirror

log = logging.getLogger(__name__)
Outcome = Literal["ok", "error", "client_error", "cancelled", "failed"]


class Slot:
    """One attempt's claim on an endpoint; metrics are labelled by the serving model and the task."""

    __slots__ = (
        "_counterfactual",
        "_endpoint",
        "_grant",
        "_metrics",
        "_released",
        "_served",
        "_started",
        "_target",
        "_task",
        "broken",
        "finished",
        "usage",
    )

    def __init__(
        self,
        metrics: Metrics,
        target: Target,
        endpoint: Endpoint,
        task: str,
        started: float,
        counterfactual: Price | None,
        grant: access.Grant | None = None,
    ) -> None:
        self._metrics = metrics
        self._grant = grant
        self._target = target
        self._endpoint = endpoint
        self._task = task
        self._started = started
        self._counterfactual = None if target.is_cloud else counterfactual
        self._released = False
        self.usage: pricing.Usage | None = None
        self.broken = False
        self.finished = False
        endpoint.outstanding += 1
        self._served = metrics.served(target.name, task)
        self._served.in_flight.inc()

    @property
    def target_name(self) -> str:
        return self._target.name

    def first_byte(self) -> None:
        elapsed = time.perf_counter() - self._started
        self._served.first_byte.observe(elapsed)

    def settle(self, usage: pricing.Usage | None) -> pricing.Bill | None:
        """Count tokens and dollars for ``usage`` (None when the upstream reported none)."""
        if usage is None:
            return None
        bill = pricing.bill(usage, self._target.price, self._counterfactual)
        served = self._served
        served.prompt_tokens.inc(usage.prompt_tokens)
        served.completion_tokens.inc(usage.completion_tokens)
        served.dollars.inc(bill.dollars)
        if bill.saved:
            served.saved.inc(bill.saved)
        if self._grant is not None:
            self._grant.settle(
                usage.prompt_tokens, usage.completion_tokens, bill.dollars, self._target.is_cloud
            )
        return bill

    def release(self, outcome: Outcome, health: bool | None) -> None:
        """Give the endpoint back; ``health`` feeds the breaker (None: says nothing about the upstream)."""
        if self._released:
            return
        self._released = True
        self._endpoint.outstanding -= 1
        m, name = self._metrics, self._target.name
        self._served.in_flight.dec()
        breaker = self._endpoint.breaker
        if health is True:
            breaker.success()
        elif health is False:
            breaker.failure()
        else:
            breaker.neutral()
        if not self._endpoint.removed:  # a pod that left meanwhile keeps no series
            m.breaker_state(name, self._endpoint.url).set(STATE_VALUES[breaker.state])
        if outcome != "failed":
            self._served.requests(m, name, self._task, outcome).inc()
            self._served.latency.observe(time.perf_counter() - self._started)


def stream_error(message: str) -> bytes:
    """An SSE event the OpenAI SDKs raise as an APIError, sent when a stream breaks after it started."""
    error = {"error": {"message": message, "type": "upstream_error", "param": None, "code": "stream_broken"}}
    return b"data: " + json.dumps(error).encode() + b"\n\n"


@dataclass(slots=True)
class Stream:
    """An SSE answer bound to one upstream response and slot; ``finish`` always closes and releases both."""

    chunks: AsyncIterator[bytes]
    slot: Slot
    upstream: aiohttp.ClientResponse | httpclient.Response
    headers: dict[str, str]
    capture: Draft | None = None
    """Set on a request sampled for distillation (``router.recording``)."""
    shadow: Mirror | None = None
    """Set on a request mirrored to its task's candidate model (``router.shadowing``)."""

    async def finish(self) -> None:
        """Settle a stream that ended well; drop the upstream socket when it broke or the client left."""
        slot = self.slot
        if slot.finished and not slot.broken:
            self.upstream.release()
            try:
                slot.settle(slot.usage)
            finally:  # whatever accounting does, the pod's slot is given back
                slot.release("ok", health=True)
        else:
            self.upstream.close()  # drop the socket: the model server sees the disconnect
            if slot.broken:
                slot.release("error", health=False)
            else:
                log.info("client went away mid-stream from %s; upstream request closed", slot.target_name)
                slot.release("cancelled", health=None)
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
