"""Where requests can go: one ``Pool`` of endpoints per fleet model or cloud provider.

Pools outlive config reloads (``Upstreams.reconcile`` updates them in place), so outstanding-request counts,
circuit breakers and held cold-start requests survive a ConfigMap change. An endpoint that leaves (its pod
went away, a reload dropped it, or its whole pool) is marked ``removed`` and reported to ``on_removed``, so
its per-endpoint metric series go too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flotilla.api.routerconfig import CircuitBreakerSettings
from flotilla.router.breaking import CircuitBreaker


@dataclass(eq=False, slots=True)
class Endpoint:
    """One pod (base URL without ``/v1``) or one provider base URL."""

    url: str
    breaker: CircuitBreaker
    outstanding: int = 0
    removed: bool = False
    """No longer in its pool: requests still on it finish, but report nothing per endpoint."""


Removed = Callable[[str, str], None]
"""Called with (pool name, endpoint URL) when an endpoint leaves its pool."""


@dataclass(eq=False)
class Pool:
    """The endpoints of one model. ``changed`` wakes requests held while the model is cold."""

    name: str
    breaker_settings: CircuitBreakerSettings
    endpoints: list[Endpoint] = field(default_factory=list)
    held: int = 0
    on_removed: Removed | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _next: int = 0

    @property
    def in_flight(self) -> int:
        return sum(e.outstanding for e in self.endpoints)

    def set_endpoints(self, urls: Iterable[str]) -> None:
        """Replace the endpoint list, keeping counters and breakers of endpoints that stay."""
        current = {e.url: e for e in self.endpoints}
        wanted = list(dict.fromkeys(u.rstrip("/") for u in urls))
        self.endpoints = [current.get(u) or self._endpoint(u) for u in wanted]
        for url in current.keys() - set(wanted):
            self._remove(current[url])
        for endpoint in self.endpoints:
            endpoint.breaker.failures = self.breaker_settings.failures
            endpoint.breaker.cooldown = self.breaker_settings.cooldown_seconds
        self._changed.set()
        self._changed = asyncio.Event()

    def remove_all(self) -> None:
        """The pool is forgotten (its model left the config): every endpoint leaves with it."""
        for endpoint in self.endpoints:
            self._remove(endpoint)

    def _remove(self, endpoint: Endpoint) -> None:
        endpoint.removed = True
        if self.on_removed is not None:
            self.on_removed(self.name, endpoint.url)

    def _endpoint(self, url: str) -> Endpoint:
        settings = self.breaker_settings
        return Endpoint(url, CircuitBreaker(settings.failures, settings.cooldown_seconds))

    def pick(self, max_in_flight: int | None) -> Endpoint | str:
        """The ready endpoint with the fewest outstanding requests, or why there is none.

        Returns ``"cold"`` (no endpoints at all), ``"unavailable"`` (all breakers open) or ``"overload"``
        (every ready endpoint at ``max_in_flight``). Ties rotate so equal pods share load.
        """
        endpoints = self.endpoints
        if not endpoints:
            return "cold"
        best: Endpoint | None = None
        count = len(endpoints)
        start = self._next % count
        for i in range(count):
            endpoint = endpoints[(start + i) % count]
            if endpoint.breaker.ready() and (best is None or endpoint.outstanding < best.outstanding):
                best = endpoint
        if best is None:
            return "unavailable"
        if max_in_flight is not None and best.outstanding >= max_in_flight:
            return "overload"
        self._next = start + 1
        best.breaker.picked()
        return best

    async def wait_for_endpoints(self, timeout: float) -> bool:
        """Hold until the pool has an endpoint (discovery or reload added one) or ``timeout`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.endpoints:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return bool(self.endpoints)
        return True


class Upstreams:
    """All pools by name (fleet models and providers share one namespace, as the config requires)."""

    def __init__(self, on_removed: Removed | None = None) -> None:
        self.pools: dict[str, Pool] = {}
        self.on_removed = on_removed

    def pool(self, name: str, breaker: CircuitBreakerSettings) -> Pool:
        """The pool called ``name``, created on first use; breaker settings follow the latest config."""
        pool = self.pools.get(name)
        if pool is None:
            pool = self.pools[name] = Pool(name, breaker, on_removed=self.on_removed)
        pool.breaker_settings = breaker
        return pool

    def retain(self, names: Iterable[str]) -> None:
        """Forget pools no longer in the config (requests still holding one finish normally)."""
        keep = set(names)
        for name in [n for n in self.pools if n not in keep]:
            self.pools.pop(name).remove_all()
