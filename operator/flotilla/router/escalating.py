"""Confidence cascade and test-time compute: the request path of a task with ``escalation`` or
``testTimeCompute``.

Only when the chain starts with a fleet model. Non-streamed: the model is asked for logprobs (and, with
test-time compute, for several samples, one of which is selected); an answer whose mean token logprob is under
``minMeanLogprob``, whose samples agree less than ``minAgreement``, or that fails a verifier is escalated to
the next upstream of the chain, whose answer is served with ``x-flotilla-route-reason: escalated:<why>``.
Streamed, with ``holdTokens``: the first tokens are held back and judged the same way before the client sees
any of them. Every answer is priced; the ``flotilla_router_escalation*`` and ``flotilla_router_cascade*``
metrics count checks, escalations and dollars per task.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from flotilla.api.routerconfig import Escalation, TaskRoute
from flotilla.router import answers, pricing, relaying, requesting, routing, sampling, streams
from flotilla.router.metrics import Metrics
from flotilla.router.replies import Plain, RequestError
from flotilla.router.sampling import COST_HEADER, Walk
from flotilla.router.snapshots import Snapshot

log = logging.getLogger(__name__)
MODEL_HEADER = "x-flotilla-model"
REASON_HEADER = "x-flotilla-route-reason"


async def complete(
    snapshot: Snapshot,
    metrics: Metrics,
    policy: TaskRoute,
    parsed: requesting.ParsedRequest,
    route: routing.Route,
    walk: Walk,
) -> Plain | relaying.Stream:
    """Serve one request of a task with escalation or test-time compute."""
    chain = route.chain
    n = parsed.payload.get("n")
    if not chain or snapshot.targets[chain[0]].is_cloud or (n is not None and n != 1):
        return await walk(parsed, chain)  # nothing to judge: a cloud answer, or the client's own n samples
    escalation = policy.escalation
    if parsed.stream:
        if escalation is not None and escalation.hold_tokens > 0:
            return await _held(snapshot, metrics, escalation, parsed, route, walk)
        return await walk(parsed, chain)
    settings = policy.test_time_compute
    sampled = settings is not None and settings.samples > 1
    # Logprobs only when a decision reads them: some servers pay for them per token (llama-cpp-python
    # sorts the whole vocabulary for each), and a majority vote needs none.
    wants_logprobs = (escalation is not None and escalation.min_mean_logprob is not None) or (
        sampled and settings is not None and settings.select == "logprob"
    )
    asked = with_logprobs(parsed) if wants_logprobs else parsed
    headers: dict[str, str] = {}
    if settings is not None and sampled:
        merged = await sampling.sample(snapshot, asked, chain[0], settings, walk)
        if merged is None:  # not one sample: the model failed, so the ordinary chain (and its fallbacks)
            return await walk(parsed, chain)
        vote = answers.select(merged.choices, settings.select)
        metrics.samples.labels(chain[0], route.task).inc(len(merged.choices))
        reply, data, chosen = merged.reply, merged.data, merged.choices[vote.index]
        usage, spent, one = merged.usage, merged.dollars, merged.one_answer
        headers["x-flotilla-samples"] = str(len(merged.choices))
        headers["x-flotilla-agreement"] = f"{vote.agreement:.2f}"
        agreement: float | None = vote.agreement if settings.select == "majority" else None
    else:
        first = await walk(asked, chain)
        if not isinstance(first, Plain) or first.status != 200:
            return first
        try:
            data = json.loads(first.body)
            chosen = data["choices"][0]
        except (ValueError, RecursionError, LookupError, TypeError):
            return first
        if not isinstance(chosen, dict):  # not a completion choice: relayed as the model sent it
            return first
        reply, usage, spent, agreement = first, pricing.usage_of(data), _cost(first), None
        one = usage
    served = reply.headers.get(MODEL_HEADER, chain[0])
    mean = answers.mean_logprob(answers.token_logprobs(chosen))
    if mean is not None:
        headers["x-flotilla-mean-logprob"] = f"{mean:.4f}"
    rest = chain[chain.index(served) + 1 :] if served in chain else ()
    if escalation is not None and not snapshot.targets[served].is_cloud and rest:
        metrics.escalation_checks.labels(route.task).inc()
        why = judge(escalation, mean, agreement, chosen, parsed.payload)
        if why is not None:
            escalated = await _escalate(metrics, parsed, route, walk, rest, why, served, spent, headers)
            if escalated is not None:
                return escalated
            log.info("task %s: escalation failed; serving %s's answer", route.task, served)
    return _serve_own(snapshot, metrics, parsed, route.task, reply, data, chosen, usage, spent, one, headers)


def judge(
    escalation: Escalation,
    mean: float | None,
    agreement: float | None,
    choice: Mapping[str, Any],
    payload: Mapping[str, Any],
) -> str | None:
    """Why the answer must be escalated (``logprob``, ``agreement`` or a verifier's name), None if it may be
    served. An answer without logprobs (a server that returns none) is not judged by them."""
    if escalation.min_mean_logprob is not None and mean is not None and mean < escalation.min_mean_logprob:
        return "logprob"
    if (
        escalation.min_agreement is not None
        and agreement is not None
        and agreement < escalation.min_agreement
    ):
        return "agreement"
    return answers.failed_verifier(escalation.verifiers, choice, payload)


async def _escalate(
    metrics: Metrics,
    parsed: requesting.ParsedRequest,
    route: routing.Route,
    walk: Walk,
    rest: tuple[str, ...],
    why: str,
    served: str,
    spent: float,
    judged: dict[str, str],
) -> Plain | None:
    """The next upstreams' answer to the original request, or None when none could give one; ``judged``
    (the escalated answer's mean logprob, samples, agreement) goes with it as headers."""
    task = route.task
    metrics.escalations.labels(task, why).inc()
    metrics.escalation_overhead.labels(task).inc(spent)
    metrics.cascade_dollars.labels(task).inc(spent)
    try:
        reply = await walk(parsed, rest)
    except RequestError as exc:
        log.info("task %s: escalation from %s failed: %s", task, served, exc.message)
        return None
    if not isinstance(reply, Plain):  # not for a non-streamed request; never left open
        await reply.finish()
        return None
    cost = _cost(reply)
    metrics.cascade_dollars.labels(task).inc(cost)
    reply.headers.update(judged)
    reply.headers[REASON_HEADER] = f"escalated:{why}"
    reply.headers["x-flotilla-escalated-from"] = served
    reply.headers[COST_HEADER] = f"{spent + cost:.10f}"
    return reply


def _serve_own(
    snapshot: Snapshot,
    metrics: Metrics,
    parsed: requesting.ParsedRequest,
    task: str,
    reply: Plain,
    data: dict[str, Any],
    chosen: dict[str, Any],
    usage: pricing.Usage | None,
    spent: float,
    one: pricing.Usage | None,
    headers: dict[str, str],
) -> Plain:
    """The fleet model's (selected) answer as the client's reply: one choice, every sample's usage."""
    if not _asked_logprobs(parsed):
        chosen["logprobs"] = None
    chosen["index"] = 0
    data["choices"] = [chosen]
    if usage is not None:
        data["usage"] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        }
    metrics.cascade_dollars.labels(task).inc(spent)
    counterfactual = snapshot.counterfactual.get(task)
    if counterfactual is not None and one is not None:
        saved = counterfactual.cost(one.prompt_tokens, one.completion_tokens) - spent
        if saved > 0:
            metrics.cascade_saved.labels(task).inc(saved)
    out = {**reply.headers, **headers}
    if COST_HEADER in reply.headers or spent:
        out[COST_HEADER] = f"{spent:.10f}"
    return Plain(200, json.dumps(data).encode(), out, reply.content_type)


def with_logprobs(parsed: requesting.ParsedRequest) -> requesting.ParsedRequest:
    """``parsed`` asking for the sampled tokens' logprobs (chat ``logprobs: true``, completions ``logprobs:
    1``) unless it already does; the client's reply leaves them out again (``_serve_own``)."""
    if _asked_logprobs(parsed):
        return parsed
    payload = dict(parsed.payload)
    if parsed.kind == "chat":
        payload["logprobs"] = True
        payload.setdefault("top_logprobs", 0)  # llama-cpp-python returns none without it
    else:
        payload["logprobs"] = 1
    return dataclasses.replace(parsed, payload=payload, raw=b"")


def _asked_logprobs(parsed: requesting.ParsedRequest) -> bool:
    value = parsed.payload.get("logprobs")
    return value is not None and value is not False


def _cost(reply: Plain) -> float:
    try:
        return float(reply.headers.get(COST_HEADER, 0.0))
    except ValueError:
        return 0.0


async def _held(
    snapshot: Snapshot,
    metrics: Metrics,
    escalation: Escalation,
    parsed: requesting.ParsedRequest,
    route: routing.Route,
    walk: Walk,
) -> Plain | relaying.Stream:
    """A stream whose first ``holdTokens`` tokens are judged before the client sees them."""
    asked = with_logprobs(parsed) if escalation.min_mean_logprob is not None else parsed
    reply = await walk(asked, route.chain)
    if not isinstance(reply, relaying.Stream):
        return reply
    served = reply.headers.get(MODEL_HEADER, route.chain[0])
    rest = route.chain[route.chain.index(served) + 1 :] if served in route.chain else ()
    if snapshot.targets[served].is_cloud or not rest:
        return reply
    chunks = reply.chunks.__aiter__()
    try:
        held = await _hold(chunks, escalation.hold_tokens)
    except BaseException:  # the client left (cancelled) while tokens were held: drop the upstream
        await reply.finish()
        raise
    metrics.escalation_checks.labels(route.task).inc()
    why = None
    if not reply.slot.broken:
        choice = {"message": {"content": held.text}, "finish_reason": held.finish}
        mean = answers.mean_logprob(held.logprobs)
        checked = escalation if held.done else escalation.model_copy(update={"verifiers": []})
        why = judge(checked, mean, None, choice, parsed.payload)
    if why is None:
        return relaying.Stream(_replay(held.chunks, chunks), reply.slot, reply.upstream, reply.headers)
    try:
        escalated = await walk(parsed, rest)
    except RequestError as exc:  # nowhere to escalate to: the held answer it is
        log.info("task %s: escalation from %s failed: %s", route.task, served, exc.message)
        return relaying.Stream(_replay(held.chunks, chunks), reply.slot, reply.upstream, reply.headers)
    metrics.escalations.labels(route.task, why).inc()
    slot = reply.slot
    if slot.finished and slot.usage is not None:  # finish() bills it
        usage = slot.usage
    else:  # cut short: bill what was generated (an estimate, as for a stream without usage)
        texts = [answers.text_of({"text": m.get("content")}) for m in parsed.messages]
        usage = pricing.Usage(streams.estimate_prompt_tokens(texts), held.tokens)
        slot.settle(usage)
    price = snapshot.targets[served].price
    metrics.escalation_overhead.labels(route.task).inc(
        price.cost(usage.prompt_tokens, usage.completion_tokens)
    )
    await reply.finish()
    escalated.headers[REASON_HEADER] = f"escalated:{why}"
    escalated.headers["x-flotilla-escalated-from"] = served
    return escalated


@dataclasses.dataclass(slots=True)
class _Held:
    chunks: list[bytes]
    logprobs: list[float]
    text: str
    tokens: int
    done: bool
    finish: str | None


async def _hold(chunks: AsyncIterator[bytes], limit: int) -> _Held:
    """Read client-bound SSE chunks until ``limit`` tokens or the end of the answer."""
    held = _Held([], [], "", 0, False, None)
    parts: list[str] = []
    while held.tokens < limit and not held.done:
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            held.done = True
            break
        held.chunks.append(chunk)
        for event in streams.split_events(chunk):
            data = streams.event_data(event)
            if data == b"[DONE]":
                held.done = True
                continue
            try:
                payload = json.loads(data)
            except (ValueError, RecursionError):
                continue
            for choice in (payload.get("choices") or []) if isinstance(payload, dict) else []:
                if not isinstance(choice, dict):
                    continue
                logprobs = answers.token_logprobs(choice)
                delta = choice.get("delta")
                text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
                if isinstance(text, str):
                    parts.append(text)
                held.logprobs += logprobs
                held.tokens += len(logprobs) or (1 if text else 0)
                held.finish = choice.get("finish_reason") or held.finish
    held.text = "".join(parts)
    return held


async def _replay(held: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The held chunks, then the rest of the stream; closing this closes the stream's relay."""
    try:
        for chunk in held:
            yield chunk
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
