"""Serve one completion request: route it, walk the fallback chain, relay the answer, price it.

A candidate is skipped (and the next one tried) only before anything reached the client and only for a
reason listed in ``fallbackOn``; every skip is counted in ``flotilla_router_fallbacks``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from flotilla.api.routerconfig import Price
from flotilla.errors import UpstreamError
from flotilla.router import (
    access,
    anthropic,
    continuing,
    decisions,
    escalating,
    forwarding,
    httpclient,
    pricing,
    recording,
    relaying,
    replies,
    requesting,
    routing,
    shadowing,
    streams,
)
from flotilla.router.metrics import Metrics
from flotilla.router.replies import REASON_STATUS, Plain, RequestError
from flotilla.router.snapshots import Snapshot
from flotilla.router.upstreams import Endpoint

log = logging.getLogger(__name__)
TASK_HEADER = "x-flotilla-task"


@dataclass(slots=True)
class Context:
    """Shared by all requests; ``snapshot`` is swapped on reload and read once per request."""

    snapshot: Snapshot
    session: aiohttp.ClientSession  # TLS upstreams (cloud providers)
    client: httpclient.Client  # plain-HTTP upstreams (fleet pods): cheaper per request
    metrics: Metrics
    keyring: access.Keyring
    recorder: recording.Recorder | None = None  # distillation capture, when the config has a sink
    shadows: shadowing.Shadows | None = None  # mirroring to candidate models (shadow evaluation)


async def complete(
    ctx: Context,
    kind: requesting.Kind,
    body: bytes,
    task_header: str | None,
    grant: access.Grant | None = None,
) -> Plain | relaying.Stream:
    """Handle ``/v1/chat/completions`` or ``/v1/completions`` (``body`` already read, size-checked);
    ``grant`` is the caller's API key when the router has access control."""
    started = time.perf_counter()
    snapshot = ctx.snapshot
    parsed = requesting.parse(kind, body)
    route = routing.choose(snapshot, parsed.model, task_header, parsed.messages)
    extra: dict[str, str] = {}
    if grant is not None:
        route, extra = grant.authorize(route, snapshot.chains, snapshot.cloud)
        grant.charge(_estimated_tokens(parsed), time.monotonic())
    if route.classify_seconds:
        how = route.reason.split(":", 1)[0]
        ctx.metrics.classified(route.task, how, route.score, route.classify_seconds)
        decisions.record(
            snapshot.config.classifier,
            route.task,
            route.score,
            route.reason,
            route.probabilities,
            parsed.messages,
        )
    draft = None
    if ctx.recorder is not None:
        draft = ctx.recorder.draft(
            snapshot.config, snapshot.targets, route.task, route.chain, route.score, kind, parsed.messages,
            parsed.stream, grant, started,
        )  # fmt: skip
    policy = snapshot.policies.get(route.task)  # escalation / test-time compute: usually none
    reply: Plain | relaying.Stream
    if policy is not None:
        walk = functools.partial(_walk, ctx, snapshot, route=route, started=started, grant=grant, extra=extra)
        reply = await escalating.complete(snapshot, ctx.metrics, policy, parsed, route, walk)
    else:
        counterfactual = snapshot.counterfactual.get(route.task)
        reply = await _walk(ctx, snapshot, parsed, route.chain, route, started, grant, extra, counterfactual)
    reply.capture = draft
    if ctx.shadows is not None:
        mirror = ctx.shadows.pick(snapshot.config, route.task, parsed)
        if mirror is not None:
            mirror.ask = functools.partial(_ask, ctx, snapshot, route)
            reply.shadow = mirror
    return reply


async def _ask(
    ctx: Context,
    snapshot: Snapshot,
    route: routing.Route,
    parsed: requesting.ParsedRequest,
    chain: tuple[str, ...],
) -> Plain | relaying.Stream:
    """A mirror's or judge's request along ``chain``: the same walk as a client's, without its key."""
    return await _walk(ctx, snapshot, parsed, chain, route, time.perf_counter(), None, {})


async def _walk(
    ctx: Context,
    snapshot: Snapshot,
    parsed: requesting.ParsedRequest,
    chain: tuple[str, ...],
    route: routing.Route,
    started: float,
    grant: access.Grant | None,
    extra: dict[str, str],
    counterfactual: Price | None = None,
) -> Plain | relaying.Stream:
    """Try ``chain`` in order until one upstream answers; ``RequestError`` when none could."""
    budget = snapshot.config.cold_start_budget_seconds
    failover = _failover(ctx, snapshot, route, parsed, started, grant)
    failure: UpstreamError | None = None
    last = "none"
    for position, name in enumerate(chain, 1):
        target = snapshot.targets[name]
        held_started = time.perf_counter()
        try:
            endpoint = await _endpoint(ctx, target, budget)
            return await _serve(
                ctx, target, endpoint, parsed, route, failure, started, counterfactual, grant, extra, failover
            )
        except UpstreamError as exc:
            failure, last = exc, name
        if target.scale_from_zero:  # the cold-start budget is for the whole request, not per model
            budget = max(0.0, budget - (time.perf_counter() - held_started))
        log.info("task %s: %s failed (%s): %s", route.task, name, failure.reason, failure)
        if failure.reason not in snapshot.fallback_on or position == len(chain):
            break
        ctx.metrics.fallbacks.labels(name, route.task, failure.reason).inc()
        ctx.metrics.failovers.labels(name, route.task, "prestream").inc()
    ctx.metrics.requests.labels(last, route.task, "error").inc()
    if failure is None:
        raise RequestError(503, f"task {route.task!r} has no models or fallbacks", "no_route")
    status, code = REASON_STATUS.get(failure.reason, (502, "upstream_error"))
    detail = f"no model could serve task {route.task!r}: {failure} (reason: {failure.reason})"
    raise RequestError(status, detail, code)


def _failover(
    ctx: Context,
    snapshot: Snapshot,
    route: routing.Route,
    parsed: requesting.ParsedRequest,
    started: float,
    grant: access.Grant | None,
) -> continuing.Failover | None:
    """How a stream of this request may go on elsewhere if it breaks mid-way (None: it may not)."""
    switches = snapshot.midstream.get(route.task, 0) if parsed.stream else 0
    if not switches or len(route.chain) < 2 or not continuing.eligible(parsed):
        return None
    counterfactual = snapshot.counterfactual.get(route.task)
    return continuing.Failover(
        ctx.session, ctx.client, ctx.metrics, snapshot.targets, route.chain, route.task, switches, parsed,
        started, counterfactual, grant,
    )  # fmt: skip


async def _endpoint(ctx: Context, target: forwarding.Target, budget: float) -> Endpoint:
    """Pick a pod; hold (up to ``budget``) while a scale-from-zero model has none."""
    picked = target.pool.pick(target.max_in_flight)
    if picked == "cold" and target.scale_from_zero:
        cold = ctx.metrics.cold(target.name)
        cold.requests.inc()  # before holding: the autoscaler must see it even if no scrape sees it held
        if budget > 0:
            pool = target.pool
            pool.held += 1
            cold.queued.inc()
            try:
                await pool.wait_for_endpoints(budget)
            finally:
                pool.held -= 1
                cold.queued.dec()
            picked = pool.pick(target.max_in_flight)
    if isinstance(picked, Endpoint):
        return picked
    if picked == "cold":
        if target.scale_from_zero:
            raise UpstreamError("cold", f"{target.name} has no ready pod (scaled to zero or starting)", 503)
        raise UpstreamError("unavailable", f"{target.name} has no ready endpoint", 503)
    if picked == "overload":
        raise UpstreamError(
            "overload", f"{target.name} is at its in-flight cap ({target.max_in_flight})", 429
        )
    raise UpstreamError("unavailable", f"every endpoint of {target.name} has an open circuit breaker", 503)


async def _serve(
    ctx: Context,
    target: forwarding.Target,
    endpoint: Endpoint,
    parsed: requesting.ParsedRequest,
    route: routing.Route,
    failure: UpstreamError | None,
    started: float,
    counterfactual: Price | None,
    grant: access.Grant | None,
    extra: dict[str, str],
    failover: continuing.Failover | None = None,
) -> Plain | relaying.Stream:
    """Send to ``endpoint``; on success return the client response (a stream keeps the slot until it ends)."""
    reason = f"fallback:{failure.reason}" if failure else route.reason
    headers = {TASK_HEADER: route.task, "x-flotilla-model": target.name, "x-flotilla-route-reason": reason}
    headers.update(extra)
    slot = relaying.Slot(ctx.metrics, target, endpoint, route.task, started, counterfactual, grant)
    try:
        opened = await forwarding.open_response(ctx.session, ctx.client, target, parsed, endpoint)
    except UpstreamError:
        slot.release("failed", health=False)
        raise
    except BaseException:
        slot.release("cancelled", health=None)
        raise
    slot.first_byte()
    response = opened.response
    if response.status != 200:  # a 4xx the client caused: relay as is, unless the host is the author's choice
        slot.release("client_error", health=None)
        if not target.relays_errors:
            message = f"fallback {target.name} (openai-compatible) answered HTTP {response.status}"
            body = replies.error_body(response.status, message, code="upstream_client_error")
            return Plain(response.status, body, headers)
        content_type = response.headers.get("content-type", "application/json")
        return Plain(response.status, opened.first, headers, content_type)
    if not parsed.stream:
        try:
            content, usage = _plain_body(target, parsed, opened.first)
        except (ValueError, TypeError, RecursionError):  # RecursionError: JSON nested too deeply
            slot.release("failed", health=False)
            raise UpstreamError(
                "error", f"{target.name} returned a body that is not a valid completion", 502
            ) from None
        try:
            bill = slot.settle(usage)
        finally:  # whatever accounting does, the pod's slot is given back
            slot.release("ok", health=True)
        if bill is not None:
            headers["x-flotilla-cost-usd"] = f"{bill.dollars:.10f}"
        return Plain(200, content, headers)
    chunks = _relay_stream(slot, target, parsed, opened, failover)
    return relaying.Stream(chunks, slot, response, headers)


def _plain_body(
    target: forwarding.Target, parsed: requesting.ParsedRequest, body: bytes
) -> tuple[bytes, pricing.Usage | None]:
    """The client body and usage of a non-streamed answer; ValueError when it is not a completion."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    if target.protocol == "anthropic":
        translated, usage = anthropic.from_response(data, parsed.kind == "chat")
        return json.dumps(translated).encode(), usage
    if not isinstance(data.get("choices"), list):
        raise ValueError("no choices")
    return body, pricing.usage_of(data)


async def _relay_stream(
    slot: relaying.Slot,
    target: forwarding.Target,
    parsed: requesting.ParsedRequest,
    opened: forwarding.Opened,
    failover: continuing.Failover | None,
) -> AsyncIterator[bytes]:
    """Yield client bytes; ``Stream.finish`` settles and releases the slot once this ends or is cancelled.

    With ``failover`` the bytes relayed are kept (a list of references, no copies), so a stream that breaks
    can be continued from the text the client already has."""
    if target.protocol == "anthropic":
        translator: anthropic.StreamTranslator | streams.SseRelay = anthropic.StreamTranslator(
            parsed.kind == "chat", parsed.wants_usage
        )
    else:
        texts = [requesting.content_text(m.get("content"), " ") for m in parsed.messages]
        translator = streams.SseRelay(not parsed.wants_usage, streams.estimate_prompt_tokens(texts))
    sent: list[bytes] | None = [] if failover is not None else None
    content = opened.response.content
    chunk = opened.first
    try:
        while chunk:
            out = translator.feed(chunk)
            if translator.done and not slot.finished:
                # The client has (or is about to have) the whole answer: bill it even if the client
                # hangs up now, before the upstream's body ends (OpenAI's SDK closes right after [DONE]).
                slot.usage = translator.usage
                slot.finished = True
            if out:
                if sent is not None:
                    sent.append(out)
                yield out
            if translator.error is not None:
                raise ValueError(translator.error)
            chunk = await content.readany()
    except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError) as exc:
        if slot.finished:
            return  # a tail after the end of the answer broke: nothing the client needs is missing
        why = f"{target.name} stream broke: {type(exc).__name__}"
        if translator.error is not None:
            why = f"{target.name} stream broke: an error event"
    else:
        rest = translator.flush() if isinstance(translator, streams.SseRelay) else b""
        if rest and (translator.done or failover is None):  # not half an event before a continuation
            yield rest
        if translator.done:
            slot.usage = translator.usage
            slot.finished = True
            return
        why = f"{target.name} ended the stream early"
    slot.broken = True
    if failover is None:
        yield relaying.stream_error(why)
        return
    async for out in failover.resume(slot, opened.response, target, sent or [], why):
        yield out


def _estimated_tokens(parsed: requesting.ParsedRequest) -> int:
    """What a request is charged against its key's tokens-per-minute before it is served."""
    texts = [requesting.content_text(m.get("content"), " ") for m in parsed.messages]
    payload = parsed.payload
    most = payload.get("max_tokens") or payload.get("max_completion_tokens") or 0
    return streams.estimate_prompt_tokens(texts) + int(most)
