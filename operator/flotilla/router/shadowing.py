"""Shadow evaluation: mirror a share of a task's requests to its candidate model and score the candidate's
answer against the one served, off the request path.

``Shadows.pick`` runs once per request when its task is known: for a task without a candidate (the common
case) it costs one dict lookup, otherwise one random draw. A picked request carries a ``Mirror`` on its
reply; once the client has the whole answer (a plain body after it was sent, a stream after its last
chunk) the mirror starts a background task, unless ``maxConcurrent`` mirrors are in flight on this replica
(then it is dropped and counted): the client never waits for the candidate.

The task asks the candidate the same request, non-streamed, through the router's own upstream walk (so the
candidate's pods, breakers and autoscaling see the load; its answer is never returned, and no API key is
charged), then scores it (``flotilla.scoring``): equal final answers, the request's checks, or an LLM judge
that is one of the fleet's fallbacks. A candidate that fails counts as an error (scored, not agreed).
Outcomes go to ``flotilla_router_shadow_*{task, candidate, replica}``, which the operator sums over the
replicas to promote or roll back the candidate (``flotilla.promoting``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from flotilla.api.routerconfig import RouterConfig, Shadow
from flotilla.capturing import traces
from flotilla.router import answers, relaying, requesting
from flotilla.router.metrics import ShadowMetrics
from flotilla.router.replies import Plain, RequestError
from flotilla.scoring import agreeing, judging

log = logging.getLogger(__name__)
MODEL_HEADER = "x-flotilla-model"
_BROKEN = b'"stream_broken"'
JUDGE_MAX_TOKENS = 8

Ask = Callable[[requesting.ParsedRequest, tuple[str, ...]], Awaitable[Plain | relaying.Stream]]
"""Send a request along a chain of upstreams and return the reply (``handling._walk`` bound to one
request's snapshot and route, without the client's key)."""


class Shadows:
    """The mirrors of one router process: which tasks have a candidate (following reloads) and the
    background tasks in flight."""

    __slots__ = ("_config", "_in_flight", "_shadows", "_tasks", "metrics", "replica")

    def __init__(self, metrics: ShadowMetrics, replica: str) -> None:
        self.metrics = metrics
        self.replica = replica
        self._config: RouterConfig | None = None
        self._shadows: dict[str, Shadow] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, int] = {}
        """Mirrors running per task (each task's ``maxConcurrent`` bounds its own)."""

    def _for(self, config: RouterConfig) -> dict[str, Shadow]:
        if config is not self._config:  # a reload: rebuild once
            self._shadows = {t.name: t.shadow for t in config.tasks if t.shadow is not None}
            self._config = config
        return self._shadows

    def pick(self, config: RouterConfig, task: str, parsed: requesting.ParsedRequest) -> Mirror | None:
        """A mirror when this request of ``task`` is to be mirrored, else None (the common, cheap case)."""
        shadow = self._for(config).get(task)
        if shadow is None or (shadow.share < 1 and random.random() >= shadow.share):
            return None
        return Mirror(self, task, shadow, parsed)

    def launch(self, mirror: Mirror, served: str, finish: str | None) -> None:
        """Start scoring ``mirror`` against the ``served`` answer, unless its task is at maxConcurrent."""
        labels = (mirror.task, mirror.shadow.model, self.replica)
        running = self._in_flight.get(mirror.task, 0)
        if running >= mirror.shadow.max_concurrent:
            self.metrics.dropped.labels(*labels).inc()
            return
        self.metrics.mirrored.labels(*labels).inc()
        self._in_flight[mirror.task] = running + 1
        task = asyncio.get_running_loop().create_task(self._run(mirror, served, finish))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._done, mirror.task))

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight[name] -= 1

    async def _run(self, mirror: Mirror, served: str, finish: str | None) -> None:
        started = time.perf_counter()
        shadow = mirror.shadow
        try:
            outcome = await _score(mirror, served, finish)
        except Exception:  # a bug here must never surface anywhere but the log and the counters
            log.exception("shadow scoring of task %s failed", mirror.task)
            outcome = "unscored"
        labels = (mirror.task, shadow.model, self.replica)
        if outcome in agreeing.SCORED:
            self.metrics.scored.labels(*labels).inc()
            if outcome == "agreed":
                self.metrics.agreed.labels(*labels).inc()
            elif outcome == "error":
                self.metrics.errors.labels(*labels).inc()
        else:
            self.metrics.unscored.labels(*labels).inc()
        self.metrics.seconds.labels(mirror.task, shadow.model).observe(time.perf_counter() - started)

    async def close(self) -> None:
        """Cancel the mirrors in flight (shutdown: they were never owed to anyone)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Mirror:
    """One request picked for mirroring, until its served answer is complete."""

    __slots__ = ("ask", "parsed", "shadow", "shadows", "task")

    def __init__(self, shadows: Shadows, task: str, shadow: Shadow, parsed: requesting.ParsedRequest) -> None:
        self.shadows = shadows
        self.task = task
        self.shadow = shadow
        self.parsed = parsed
        self.ask: Ask | None = None

    def plain(self, reply: Plain) -> None:
        """A whole answer, just sent to the client."""
        if reply.status != 200 or reply.headers.get(MODEL_HEADER) == self.shadow.model:
            return
        try:
            text, finish = traces.answer_of(reply.body, None)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return
        self.shadows.launch(self, text, finish)

    def stream(self, reply: relaying.Stream, chunks: Sequence[bytes]) -> None:
        """A stream relayed to its end (not one that broke with an error event)."""
        if not chunks or _BROKEN in chunks[-1] or reply.headers.get(MODEL_HEADER) == self.shadow.model:
            return
        try:
            text, finish = traces.answer_of(None, chunks)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return
        self.shadows.launch(self, text, finish)


def _non_streamed(parsed: requesting.ParsedRequest) -> requesting.ParsedRequest:
    """The request as the candidate gets it: the same payload, answered in one body."""
    payload = dict(parsed.payload)
    payload["stream"] = False
    payload.pop("stream_options", None)
    return dataclasses.replace(parsed, payload=payload, stream=False, wants_usage=False, raw=b"")


async def _answer(
    ask: Ask, parsed: requesting.ParsedRequest, chain: tuple[str, ...]
) -> tuple[str, str | None]:
    """The text and finish reason ``chain`` answers; UpstreamFailed when it could not."""
    try:
        reply = await ask(parsed, chain)
    except RequestError as exc:
        raise UpstreamFailed(exc.message) from None
    if isinstance(reply, relaying.Stream):  # not for a non-streamed request; never left open
        await reply.finish()
        raise UpstreamFailed("answered a stream")
    if reply.status != 200:
        raise UpstreamFailed(f"HTTP {reply.status}")
    try:
        return traces.answer_of(reply.body, None)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise UpstreamFailed("not an OpenAI answer") from None


class UpstreamFailed(Exception):
    """The candidate or the judge gave no usable answer."""


async def _score(mirror: Mirror, served: str, finish: str | None) -> agreeing.Outcome:
    shadow, ask = mirror.shadow, mirror.ask
    if ask is None:
        return "unscored"
    try:
        candidate, candidate_finish = await _answer(ask, _non_streamed(mirror.parsed), (shadow.model,))
    except UpstreamFailed as exc:
        log.info("task %s: candidate %s failed: %s", mirror.task, shadow.model, exc)
        return "error"
    if shadow.score == "exact-final-answer":
        return agreeing.exact_final_answer(served, candidate)
    if shadow.score == "checks":
        payload = mirror.parsed.payload
        served_failed = answers.failed_verifier(shadow.checks, _choice(served, finish), payload)
        candidate_failed = answers.failed_verifier(
            shadow.checks, _choice(candidate, candidate_finish), payload
        )
        return agreeing.from_checks(served_failed, candidate_failed)
    if shadow.judge is None:
        return "unscored"
    body = {
        "model": shadow.judge,
        "messages": judging.messages(_question(mirror.parsed.messages), served, candidate),
        "max_tokens": JUDGE_MAX_TOKENS,
        "temperature": 0,
    }
    judge_request = requesting.parse("chat", json.dumps(body).encode())
    try:
        reply, _ = await _answer(ask, judge_request, (shadow.judge,))
    except UpstreamFailed as exc:
        log.info("task %s: judge %s failed: %s", mirror.task, shadow.judge, exc)
        return "unscored"
    return agreeing.from_verdict(judging.verdict(reply))


def _choice(text: str, finish: str | None) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": text}, "finish_reason": finish}


def _question(messages: Sequence[Mapping[str, Any]]) -> str:
    """The last user turn's text (parts joined), what the judge needs to know what was asked."""
    for message in reversed(messages):
        if message.get("role", "user") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    return ""
