"""Which models of a pack are loaded: at most ``limit``, the least recently used unloaded first.

Pure asyncio bookkeeping (the loading itself is a callback), so it is tested without Ray. A model is
never unloaded while it has requests in flight; a request for an unloaded model waits until a loaded
one falls idle, then for its own load.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

Loader = Callable[[str], Awaitable[None]]


class Residency:
    def __init__(self, loaded: Iterable[str], limit: int, load: Loader, unload: Loader) -> None:
        self._lru: OrderedDict[str, None] = OrderedDict((name, None) for name in loaded)  # oldest first
        self._limit = limit
        self._load = load
        self._unload = unload
        self._in_flight: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self.loads = 0
        self.unloads = 0

    @property
    def loaded(self) -> list[str]:
        return list(self._lru)

    @asynccontextmanager
    async def using(self, name: str) -> AsyncIterator[None]:
        """Hold ``name`` loaded for the body of the ``async with``."""
        async with self._changed:
            while name not in self._lru:
                if len(self._lru) < self._limit:
                    await self._load(name)  # under the lock: one load or unload at a time
                    self._lru[name] = None
                    self.loads += 1
                    break
                idle = next((n for n in self._lru if not self._in_flight.get(n)), None)
                if idle is None:
                    await self._changed.wait()
                    continue
                await self._unload(idle)
                del self._lru[idle]
                self.unloads += 1
            self._lru.move_to_end(name)
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
        try:
            yield
        finally:
            async with self._changed:
                self._in_flight[name] -= 1
                self._changed.notify_all()
