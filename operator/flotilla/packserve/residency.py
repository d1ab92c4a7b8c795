"""Which models of a pack are loaded: at most ``limit``, the least recently used unloaded first.

Pure asyncio bookkeeping (the loading itself is a callback), so it is tested without Ray. A model is
never unloaded while it has requests in flight; a request for an unloaded model waits until a loaded
one falls idle, then for its own load. Loads and unloads run outside the lock, so requests for loaded
models are not held behind another model's load; a model being loaded or unloaded still counts against
``limit`` (its memory is in use).
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
        self._busy: set[str] = set()  # being loaded or unloaded
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
                if name in self._busy:
                    await self._changed.wait()
                elif len(self._lru) + len(self._busy) < self._limit:
                    await self._outside_lock(name, loading=True)
                else:
                    idle = next((n for n in self._lru if not self._in_flight.get(n)), None)
                    if idle is None:
                        await self._changed.wait()
                        continue
                    del self._lru[idle]
                    await self._outside_lock(idle, loading=False)
            self._lru.move_to_end(name)
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
        try:
            yield
        finally:
            async with self._changed:
                self._in_flight[name] -= 1
                self._changed.notify_all()

    async def _outside_lock(self, name: str, loading: bool) -> None:
        """Load or unload ``name`` with it marked busy and the lock released; called holding the lock.

        A request cancelled meanwhile (its client left) still waits for the load or unload to finish and
        books it, so the books match the model servers, which finish it anyway."""
        self._busy.add(name)
        self._changed.release()
        task = asyncio.ensure_future(self._load(name) if loading else self._unload(name))
        try:
            await asyncio.shield(task)
        finally:
            if not task.done():
                await asyncio.wait([task])
            await self._changed.acquire()
            self._busy.discard(name)
            if loading and not task.cancelled() and task.exception() is None:
                self._lru[name] = None
                self.loads += 1
            elif not loading:
                self.unloads += 1
            self._changed.notify_all()
