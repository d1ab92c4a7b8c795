"""Vet a fleet's own classifier (``routing.classifier.model``) before its router config names it.

The operator does with the file what every router replica will do (``router/classifierfetching.py``): fetch
it, check its sha256, parse it, check that it fits the packaged embedding and covers the fleet's tasks. A
bad file is reported on the fleet (``ClassifierReady=False`` and a Warning Event, from ``statuses``) and not
rendered: the router config goes on naming the last accepted classifier (``status.classifier``), or none,
so the routers keep classifying as they did.

Per process, a file is fetched once per sha256 (kept on disk by ``classifierfetching``; one fetch at a
time per digest) and its fit to the embedding checked once, so resuming a hundred fleets that share one
classifier fetches it once. Checking the fit loads the embedding (~70 MB, ~0.3 s) for that moment only:
the operator is not the router and must stay small. For the same reason the classifier modules (numpy,
~10 MB) are imported on first use, so an operator whose fleets name no classifier never loads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flotilla import errors
from flotilla.api import routerconfig
from flotilla.reconcile import desiring

if TYPE_CHECKING:
    from flotilla.router.classifying import heads


@dataclasses.dataclass(frozen=True)
class Accepted:
    """A classifier the operator checked and the router config names (``status.classifier``)."""

    url: str
    sha256: str
    version: str
    tasks: tuple[str, ...]
    """The head's classes."""

    def model(self) -> dict[str, str]:
        """The router config's ``classifier.model``."""
        return {"url": self.url, "sha256": self.sha256}

    def to_status(self) -> dict[str, Any]:
        return {"url": self.url, "sha256": self.sha256, "version": self.version, "tasks": list(self.tasks)}

    @classmethod
    def from_status(cls, stored: Any) -> Accepted | None:
        """From a stored ``status.classifier`` (None when absent or unreadable)."""
        if not isinstance(stored, Mapping) or not stored.get("url") or not stored.get("sha256"):
            return None
        tasks = stored.get("tasks") or []
        return cls(str(stored["url"]), str(stored["sha256"]), str(stored.get("version", "")),
                   tuple(str(t) for t in tasks))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of vetting one generation's classifier."""

    wanted: bool
    """The spec names a classifier."""
    accepted: Accepted | None
    """What the router config names: the spec's classifier, or after a rejection the last accepted one."""
    error: str | None = None
    """Why the spec's classifier was rejected."""
    retryable: bool = False
    """The rejection may pass by itself (the server down, the file not uploaded yet): check again later."""


PACKAGED = Verdict(wanted=False, accepted=None)
"""A fleet without a classifier of its own."""


class Vetter:
    """Checks classifier files and remembers, per sha256, which ones fit the embedding."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        """Where fetched files are kept; None: ``classifierfetching.CACHE_DIR``."""
        self._fits: dict[str, str | None] = {}
        """sha256 -> None when the head fits the packaged embedding, else why not."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._embedding = threading.Lock()
        """One embedding loaded at a time, however many new files are being checked."""

    async def vet(self, fleet: Mapping[str, Any], previous: Accepted | None) -> Verdict:
        """Vet the classifier ``fleet`` names, ``previous`` being the one its router config names now.

        Raises ``InvalidSpecError`` when the spec names a classifier but cannot be parsed.
        """
        routing = ((fleet.get("spec") or {}).get("routing")) or {}
        if not (routing.get("classifier") or {}).get("model"):
            return PACKAGED
        from flotilla.router import classifierfetching

        config = desiring.router_config(fleet)
        wanted = config.classifier.model
        assert wanted is not None  # the spec names one
        try:
            return Verdict(True, await self._check(wanted, config))
        except errors.ConfigError as exc:
            error = str(exc)
            retryable = isinstance(exc, classifierfetching.FetchError) and exc.retryable
        if previous is None:
            kept = None
        elif previous.model() == wanted.model_dump():  # the file the routers have: keep it unless it is bad
            kept = previous if retryable else None
        else:
            kept = await self._still_good(previous, config)
        return Verdict(True, kept, error, retryable)

    async def _still_good(self, previous: Accepted, config: routerconfig.RouterConfig) -> Accepted | None:
        """The last accepted classifier, if it still covers the tasks (kept when that cannot be told now)."""
        from flotilla.router import classifierfetching

        try:
            return await self._check(routerconfig.ClassifierModel(**previous.model()), config)
        except classifierfetching.FetchError as exc:
            return previous if exc.retryable else None
        except errors.ConfigError:
            return None

    async def _check(
        self, model: routerconfig.ClassifierModel, config: routerconfig.RouterConfig
    ) -> Accepted:
        from flotilla.router import classifierfetching
        from flotilla.router.classifying import heads

        async with self._locks.setdefault(model.sha256, asyncio.Lock()):
            cache_dir = self.cache_dir or classifierfetching.CACHE_DIR
            data = await classifierfetching.fetch(model.url, model.sha256, cache_dir=cache_dir)
            head = await asyncio.to_thread(self._fitting, data, model)
        heads.check_covers(head, [t.name for t in config.tasks], config.default_task)
        return Accepted(model.url, model.sha256, str(head.meta.get("version", "")), head.classes)

    def _fitting(self, data: bytes, model: routerconfig.ClassifierModel) -> heads.Head:
        """The parsed head, checked against the packaged embedding (once per sha256). In a thread."""
        from flotilla.router.classifying import embedding, heads

        head = heads.from_bytes(data, f"classifier {model.url}")
        with self._embedding:
            if model.sha256 not in self._fits:
                # A private embedder, not ``embedding.load()``'s process-wide one: dropped right after.
                try:
                    head.check_compatible(embedding.StaticEmbedder(embedding.PACKAGED_ASSET))
                    self._fits[model.sha256] = None
                except errors.ConfigError as exc:
                    self._fits[model.sha256] = str(exc)
                finally:
                    _release_freed_memory()
        misfit = self._fits[model.sha256]
        if misfit is not None:
            raise errors.ConfigError(misfit)
        return head


def _release_freed_memory() -> None:
    """Hand the dropped embedding's memory back to the system: glibc keeps freed heap for reuse. Measured
    on the operator's modules: RSS 64 MB before the first check, 137 MB during it, 106 MB after it without
    this and 91 MB with it (numpy, the classifier modules and the fetch's leftovers stay)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): nothing to hand back
        ctypes.CDLL("libc.so.6").malloc_trim(0)
