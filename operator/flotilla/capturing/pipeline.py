"""From the request path to the store without the request ever waiting: buffer -> spool -> uploader.

``offer`` takes a ``traces.Raw`` (references only) and never blocks: with ``queue_size`` traces already
waiting, the newest is dropped (counted with reason ``queue_full``). The traces offered during one turn of
the event loop are built, redacted and encoded into JSON lines in one callback right after it (after the
replies went out), so their request objects die young instead of lingering into the garbage collector's
older generations; only the encoded bytes wait (a trace over ``LARGE`` is built in a worker thread). A
writer task appends the waiting lines to the spool in a worker thread (write and fsync, GIL released)
once per ``LINGER`` or ``BATCH`` lines: from then on a trace counts as captured. An uploader task seals
segments when due and puts each sealed one to the sink, oldest first; a failed put is retried with
exponential backoff (0.5 s doubling to 30 s) and the segment stays in the spool until the store
acknowledges it. ``close`` (the router's shutdown, e.g. SIGTERM) builds and spools what is waiting, seals
the open segment and keeps uploading until the spool is empty or ``flush_seconds`` ran out.
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

from flotilla.api.captures import CAPTURED_METRIC
from flotilla.api.routerconfig import CaptureSettings
from flotilla.capturing import traces
from flotilla.capturing.redacting import Redactor
from flotilla.capturing.sinks import DirectorySink, S3Sink, Sink
from flotilla.capturing.spooling import Spool

log = logging.getLogger(__name__)
BATCH = 512
LINGER = 0.2
"""Seconds the writer waits for a batch to fill after its first line: one worker-thread hand-off and one
fsync per batch instead of per request (at c=1 per-request batches cost the router a third of its CPU)."""
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
TICK = 0.5  # seconds between the uploader's looks at the spool when it is idle
LARGE = 64 * 1024
"""Characters of prompt and answer above which a trace is built in a worker thread instead of the event
loop: redacting a huge prompt must not stall the loop (the GIL still lets it run every 5 ms)."""


class CaptureMetrics:
    """``flotilla_router_traces_*``: captured (durable in the spool), uploaded (acknowledged by the store),
    dropped by reason (queue_full, spool_full, unreadable), upload failures and the spool's size."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.captured = Counter(
            CAPTURED_METRIC.removesuffix("_total"),
            "Traces written to the local spool, by task and replica (the operator sums them: status.traces).",
            ["task", "replica"],
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
        self._raws: list[traces.Raw] = []
        """Offered this turn of the event loop, built by ``_build`` right after it."""
        self._lines: list[bytes] = []
        self._tasks: list[str] = []
        """Encoded traces waiting for the writer, and each one's task (the captured metric's label)."""
        self._large: list[traces.Raw] = []
        self._large_builder: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._uploader: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def update(self, settings: CaptureSettings) -> None:
        """A reloaded config: new redaction patterns apply from the next loop turn's traces on. The sink
        and the spool are kept: a new sink needs a restart."""
        if settings.redact != self.settings.redact:
            self.redactor = Redactor(settings.redact)
        self.settings = settings.model_copy(
            update={"s3": self.settings.s3, "directory": self.settings.directory}
        )

    def offer(self, raw: traces.Raw) -> None:
        """Hand one trace over; never blocks (with ``queue_size`` traces waiting, it is dropped)."""
        if len(self._raws) + len(self._large) + len(self._lines) >= self.settings.queue_size:
            self.metrics.dropped.labels("queue_full").inc()
            return
        if not self._raws:
            asyncio.get_running_loop().call_soon(self._build)
        self._raws.append(raw)

    def _build(self) -> None:
        """Build, redact and encode the traces offered in the last loop turn (pure CPU, no I/O); a large
        one goes to a worker thread."""
        raws, self._raws = self._raws, []
        small = [raw for raw in raws if traces.size(raw) <= LARGE]
        if len(small) < len(raws):
            self._large += [raw for raw in raws if traces.size(raw) > LARGE]
            if self._large_builder is None or self._large_builder.done():
                self._large_builder = asyncio.get_running_loop().create_task(self._build_large())
        self._add(*self._encode(small, self.redactor))

    async def _build_large(self) -> None:
        while self._large:
            raws, self._large = self._large, []
            self._add(*await asyncio.to_thread(self._encode, raws, self.redactor))

    @staticmethod
    def _encode(raws: Sequence[traces.Raw], redactor: Redactor) -> tuple[list[bytes], list[str], int]:
        lines: list[bytes] = []
        tasks: list[str] = []
        unreadable = 0
        for raw in raws:
            try:
                lines.append(traces.line(raw, redactor))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
                unreadable += 1
            else:
                tasks.append(raw.task)
        return lines, tasks, unreadable

    def _add(self, lines: list[bytes], tasks: list[str], unreadable: int) -> None:
        if unreadable:
            self.metrics.dropped.labels("unreadable").inc(unreadable)
        if lines:
            self._lines += lines
            self._tasks += tasks
            self._ready.set()

    async def start(self) -> None:
        waiting = await asyncio.to_thread(self.spool.recover)
        if waiting:
            log.info("trace spool: %d segments from a previous run to upload", waiting)
        self.metrics.spool_bytes.set(self.spool.pending_bytes())
        self._writer = asyncio.create_task(self._write())
        self._uploader = asyncio.create_task(self._upload_forever())

    async def close(self) -> None:
        """Spool every waiting trace, then upload until it is empty or ``flush_seconds`` ran out."""
        deadline = time.monotonic() + self.settings.flush_seconds
        self._build()  # what was offered in this very turn
        if self._large_builder is not None:
            await self._large_builder
        if self._writer is not None and not self._writer.done():
            self._closing = True
            self._ready.set()
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
        while True:
            await self._ready.wait()
            if not self._closing and len(self._lines) < BATCH:
                await asyncio.sleep(LINGER)  # let the batch fill: one hand-off and one fsync for all of it
            self._ready.clear()
            lines, tasks = self._lines, self._tasks
            self._lines, self._tasks = [], []
            if lines:
                try:
                    await asyncio.to_thread(self._spool, lines, tasks)
                except OSError:
                    log.exception("trace spool: writing %d traces failed", len(lines))
                    self.metrics.dropped.labels("spool_error").inc(len(lines))
                self._wake.set()
            if self._closing and not self._lines:
                return

    def _spool(self, lines: Sequence[bytes], tasks: Sequence[str]) -> None:
        """Worker thread: append encoded lines durably and count them."""
        accepted = self.spool.append(lines)
        counts: dict[str, int] = {}
        for task in tasks[:accepted]:
            counts[task] = counts.get(task, 0) + 1
        for task, count in counts.items():
            self.metrics.captured.labels(task, self.replica).inc(count)
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
