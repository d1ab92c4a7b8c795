"""From the request path to the store without the request ever waiting: queue -> spool -> uploader.

``offer`` puts a ``traces.Raw`` on a bounded in-memory queue (never blocks: a full queue drops the trace,
counted with reason ``queue_full``). A writer task takes batches off the queue and, in a worker thread,
builds and redacts the records and appends them to the spool (fsync per batch): from then on a trace counts
as captured. An uploader task seals segments when due and puts each sealed one to the sink, oldest first;
a failed put is retried with exponential backoff (0.5 s doubling to 30 s) and the segment stays in the
spool until the store acknowledges it. ``close`` (the router's shutdown, e.g. SIGTERM) drains the queue,
seals the open segment and keeps uploading until the spool is empty or ``flush_seconds`` ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from flotilla.api.routerconfig import CaptureSettings
from flotilla.capturing import traces
from flotilla.capturing.redacting import Redactor
from flotilla.capturing.sinks import DirectorySink, S3Sink, Sink
from flotilla.capturing.spooling import Spool

log = logging.getLogger(__name__)
BATCH = 512
LINGER = 0.2
"""Seconds the writer waits for a batch to fill after its first trace: one worker-thread hand-off and one
fsync per batch instead of per request (at c=1 per-request batches cost the router a third of its CPU)."""
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
TICK = 0.5  # seconds between the uploader's looks at the spool when it is idle


class CaptureMetrics:
    """``flotilla_router_traces_*``: captured (durable in the spool), uploaded (acknowledged by the store),
    dropped by reason (queue_full, spool_full, unreadable), upload failures and the spool's size."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.captured = Counter(
            "flotilla_router_traces_captured",
            "Traces written to the local spool, by task.",
            ["task"],
            registry=registry,
        )
        self.uploaded = Counter(
            "flotilla_router_traces_uploaded", "Traces the store acknowledged.", registry=registry
        )
        self.dropped = Counter(
            "flotilla_router_traces_dropped",
            "Traces not captured: queue_full, spool_full or unreadable (an answer that could not be parsed).",
            ["reason"],
            registry=registry,
        )
        self.upload_failures = Counter(
            "flotilla_router_trace_upload_failures",
            "Segment uploads that failed (retried).",
            registry=registry,
        )
        self.spool_bytes = Gauge(
            "flotilla_router_trace_spool_bytes", "Bytes waiting in the local spool.", registry=registry
        )


def make_sink(settings: CaptureSettings, env: dict[str, str]) -> Sink:
    """The configured sink; S3 credentials are read from the env vars the config names."""
    if settings.s3 is not None:
        s3 = settings.s3
        return S3Sink(
            s3.endpoint,
            s3.bucket,
            env.get(s3.access_key_env) if s3.access_key_env else None,
            env.get(s3.secret_key_env) if s3.secret_key_env else None,
            s3.region,
        )
    assert settings.directory is not None  # CaptureSettings requires one
    return DirectorySink(Path(settings.directory.path))


class Pipeline:
    """One router process's capture: started in the lifespan, closed on shutdown."""

    def __init__(
        self,
        settings: CaptureSettings,
        fleet: str,
        replica: str,
        sink: Sink,
        metrics: CaptureMetrics,
    ) -> None:
        self.settings = settings
        self.fleet = fleet
        self.replica = replica
        self.sink = sink
        self.metrics = metrics
        self.prefix = settings.s3.prefix if settings.s3 is not None else ""
        self.redactor = Redactor(settings.redact)
        self.spool = Spool(
            Path(settings.spool_dir),
            settings.spool_max_bytes,
            settings.segment_max_bytes,
            settings.segment_max_seconds,
        )
        self.queue: asyncio.Queue[traces.Raw | None] = asyncio.Queue(settings.queue_size)
        self._writer: asyncio.Task[None] | None = None
        self._uploader: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def update(self, settings: CaptureSettings) -> None:
        """A reloaded config: new redaction patterns apply to the next batch (swapped whole, so the writer
        thread sees the old or the new redactor, never half of one). The sink and the spool are kept: a
        new sink needs a restart."""
        if settings.redact != self.settings.redact:
            self.redactor = Redactor(settings.redact)
        self.settings = settings.model_copy(
            update={"s3": self.settings.s3, "directory": self.settings.directory}
        )

    def offer(self, raw: traces.Raw) -> None:
        """Hand one trace over; never blocks (a full queue drops it)."""
        try:
            self.queue.put_nowait(raw)
        except asyncio.QueueFull:
            self.metrics.dropped.labels("queue_full").inc()

    async def start(self) -> None:
        waiting = await asyncio.to_thread(self.spool.recover)
        if waiting:
            log.info("trace spool: %d segments from a previous run to upload", waiting)
        self.metrics.spool_bytes.set(self.spool.pending_bytes())
        self._writer = asyncio.create_task(self._write())
        self._uploader = asyncio.create_task(self._upload_forever())

    async def close(self) -> None:
        """Drain the queue into the spool, then upload until it is empty or ``flush_seconds`` ran out."""
        deadline = time.monotonic() + self.settings.flush_seconds
        if self._writer is not None and not self._writer.done():
            await self.queue.put(None)
            await self._writer
        if self._uploader is not None:
            # Python 3.11's wait_for can swallow a cancel that lands as its inner wait completes (the
            # writer's last wake-up does exactly that): the flag ends the loop at its next turn anyway.
            self._stopping = True
            self._uploader.cancel()
            await asyncio.wait([self._uploader], timeout=self.settings.flush_seconds)
        await asyncio.to_thread(self.spool.seal)
        backoff = BACKOFF_START
        while self.spool.sealed() and time.monotonic() < deadline:
            if not await self._upload_once():
                await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, BACKOFF_MAX)
        left = len(self.spool.sealed())
        if left:
            log.warning(
                "trace spool: %d segments not uploaded at shutdown (left in %s)", left, self.spool.directory
            )

    async def _write(self) -> None:
        done = False
        while not done:
            first = await self.queue.get()
            if first is not None and self.queue.qsize() < BATCH:
                await asyncio.sleep(LINGER)  # let the batch fill: one hand-off and one fsync for all of it
            batch: list[traces.Raw] = []
            item: traces.Raw | None = first
            while True:
                if item is None:  # close(): write what is here and stop
                    done = True
                    break
                batch.append(item)
                if len(batch) >= BATCH or self.queue.empty():
                    break
                item = self.queue.get_nowait()
            if batch:
                try:
                    await asyncio.to_thread(self._spool_batch, batch)
                except OSError:
                    log.exception("trace spool: writing %d traces failed", len(batch))
                    self.metrics.dropped.labels("spool_error").inc(len(batch))
                self._wake.set()

    def _spool_batch(self, batch: Sequence[traces.Raw]) -> None:
        """Worker thread: build, redact and append one batch."""
        lines: list[bytes] = []
        tasks: list[str] = []
        unreadable = 0
        redactor = self.redactor
        for raw in batch:
            try:
                lines.append(traces.line(traces.record(raw, redactor)))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
                unreadable += 1
            else:
                tasks.append(raw.task)
        accepted = self.spool.append(lines)
        for task in set(tasks[:accepted]):
            self.metrics.captured.labels(task).inc(tasks[:accepted].count(task))
        if unreadable:
            self.metrics.dropped.labels("unreadable").inc(unreadable)
        if accepted < len(lines):
            self.metrics.dropped.labels("spool_full").inc(len(lines) - accepted)
        self.metrics.spool_bytes.set(self.spool.pending_bytes())

    async def _upload_forever(self) -> None:
        backoff = BACKOFF_START
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK)
            self._wake.clear()
            if self._stopping:
                return
            await asyncio.to_thread(self.spool.seal, True)
            if await self._upload_once():
                backoff = BACKOFF_START
                continue
            # jitter: replicas that lost the store together do not come back in step
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def key(self, segment: Path) -> str:
        """``<prefix><fleet>/<UTC date>/<replica>-<segment id>.jsonl``."""
        stamp = int(segment.name.split("-", 1)[0])
        date = time.strftime("%Y-%m-%d", time.gmtime(stamp / 1e9))
        return f"{self.prefix}{self.fleet}/{date}/{self.replica}-{segment.name}"

    async def _upload_once(self) -> bool:
        """Upload every sealed segment, oldest first; False at the first failure."""
        for segment in self.spool.sealed():
            try:
                data = await asyncio.to_thread(segment.read_bytes)
            except FileNotFoundError:
                continue  # removed meanwhile (uploaded by a concurrent flush)
            try:
                await asyncio.to_thread(self.sink.put, self.key(segment), data)
            except Exception as exc:  # any store failure: keep the segment, retry later
                self.metrics.upload_failures.inc()
                log.warning("trace upload to %s failed (will retry): %s", self.sink.describe(), exc)
                return False
            self.spool.remove(segment)
            self.metrics.uploaded.inc(data.count(b"\n"))
            self.metrics.spool_bytes.set(self.spool.pending_bytes())
        return True
