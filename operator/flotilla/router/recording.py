"""Capture answered requests for distillation (``tasks[].capture``), off the request path.

The decision is made once per request when its route is known (``Recorder.draft``): a task without capture,
a key whose policy opts out, or a request outside the sample costs one dict lookup and returns None. A
sampled request carries a ``Draft`` on its reply; when the answer is complete (a plain body before it is
sent, a stream after its last chunk), the draft checks the ``from`` filter against the model that actually
served and hands references (no copies, no parsing) to ``capturing.pipeline``, which builds and redacts
the record in a callback after the reply went out and spools it in batches.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from flotilla.api.routerconfig import Capture, RouterConfig
from flotilla.capturing import traces
from flotilla.capturing.pipeline import Pipeline
from flotilla.router import access, forwarding, relaying
from flotilla.router.replies import Plain

log = logging.getLogger(__name__)
MODEL_HEADER = "x-flotilla-model"
REASON_HEADER = "x-flotilla-route-reason"
_BROKEN = b'"stream_broken"'


class Recorder:
    """Samples requests of the capturing tasks into the pipeline; the tasks' settings follow reloads."""

    __slots__ = ("_captures", "_config", "pipeline")

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._config: RouterConfig | None = None
        self._captures: dict[str, Capture] = {}

    def _for(self, config: RouterConfig) -> dict[str, Capture]:
        if config is not self._config:  # a reload: rebuild once
            self._captures = {t.name: t.capture for t in config.tasks if t.capture and t.capture.sample > 0}
            self._config = config
        return self._captures

    def draft(
        self,
        config: RouterConfig,
        targets: Mapping[str, forwarding.Target],
        task: str,
        chain: Sequence[str],
        score: float,
        kind: str,
        messages: Sequence[Mapping[str, Any]],
        stream: bool,
        grant: access.Grant | None,
        started: float,
    ) -> Draft | None:
        """A draft when this request is to be captured, else None (the common, cheap case)."""
        capture = self._for(config).get(task)
        if capture is None or (grant is not None and not grant.capture):
            return None
        if capture.sample < 1 and random.random() >= capture.sample:
            return None
        first = chain[0] if chain else ""
        return Draft(self.pipeline, config.fleet, targets, capture, task, first, score, kind, messages,
                     stream, grant.name if grant else None, started)  # fmt: skip


class Draft:
    """One sampled request until its answer is complete."""

    __slots__ = (
        "_capture",
        "_first",
        "_grant",
        "_kind",
        "_messages",
        "_pipeline",
        "_score",
        "_started",
        "_stream",
        "_targets",
        "_task",
        "fleet",
    )

    def __init__(
        self,
        pipeline: Pipeline,
        fleet: str,
        targets: Mapping[str, forwarding.Target],
        capture: Capture,
        task: str,
        first: str,
        score: float,
        kind: str,
        messages: Sequence[Mapping[str, Any]],
        stream: bool,
        grant: str | None,
        started: float,
    ) -> None:
        self._pipeline = pipeline
        self.fleet = fleet
        self._targets = targets
        self._capture = capture
        self._task = task
        self._first = first
        self._score = score
        self._kind = kind
        self._messages = messages
        self._stream = stream
        self._grant = grant
        self._started = started

    def _raw(self, headers: Mapping[str, str]) -> traces.Raw | None:
        """The trace for an answer served as ``headers`` say, unless the ``from`` filter excludes it."""
        model = headers.get(MODEL_HEADER, "")
        target = self._targets.get(model)
        cloud = bool(target and target.is_cloud)
        reason = headers.get(REASON_HEADER, "")
        fell_back = model != self._first or reason.startswith(("fallback:", "escalated:"))
        source = self._capture.source
        if (source == "cloud" and not cloud) or (source == "fallbacks" and not fell_back):
            return None
        return traces.Raw(
            fleet=self.fleet,
            task=self._task,
            kind=self._kind,
            model=model,
            cloud=cloud,
            fell_back=fell_back,
            reason=reason,
            key=self._grant,
            score=self._score,
            latency=time.perf_counter() - self._started,
            wall_time=time.time(),
            stream=self._stream,
            messages=self._messages,
        )

    def plain(self, reply: Plain) -> None:
        """A whole answer, just before it is sent."""
        if reply.status != 200:
            return
        raw = self._raw(reply.headers)
        if raw is not None:
            raw.body = reply.body
            self._pipeline.offer(raw)

    def stream(self, reply: relaying.Stream, chunks: Sequence[bytes]) -> None:
        """A stream that was relayed to its end (not one that broke with an error event)."""
        if not chunks or _BROKEN in chunks[-1]:
            return
        raw = self._raw(reply.headers)
        if raw is None:
            return
        raw.chunks = chunks
        usage = reply.slot.usage
        if usage is not None:
            raw.prompt_tokens, raw.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        self._pipeline.offer(raw)
