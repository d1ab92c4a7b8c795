"""Mid-stream failover: a stream that broke after it started goes on from the next upstream of the chain.

The client already holds a 200 and part of the answer, so falling back as before a stream is no longer
possible. Instead the next model or fallback of the task (in chain order, skipping any that cannot take it)
is asked to *continue* the partial answer: the request is resent with the partial text as a final assistant
message (a prefill: llama.cpp's server, vLLM with ``continue_final_message``, Anthropic natively; for
``/v1/completions`` it is appended to the prompt), and ``splicing`` relays only its new text under the first
leg's chunk identity. Each leg is billed at its own price: a broken leg by its estimate (the prompt, one
token per content chunk), a finished one by its reported usage; the client's usage chunk adds them up.
The switch is logged, counted in ``flotilla_router_failovers_total{phase="midstream"}`` and recorded in
the stream's end (``splicing.tail``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from flotilla.api.routerconfig import Price
from flotilla.errors import UpstreamError
from flotilla.router import access, anthropic, forwarding, httpclient, pricing, relaying, splicing, streams
from flotilla.router.forwarding import Target
from flotilla.router.metrics import Metrics
from flotilla.router.requesting import ParsedRequest
from flotilla.router.upstreams import Endpoint

log = logging.getLogger(__name__)
_BROKE = (aiohttp.ClientError, TimeoutError, ValueError, RecursionError)


def eligible(parsed: ParsedRequest) -> bool:
    """Whether a stream of ``parsed`` could be continued: one choice of text (several prompts or ``n`` > 1
    stream several answers at once, which one prefill cannot continue)."""
    payload = parsed.payload
    if payload.get("n") not in (None, 1):
        return False
    prompt = payload.get("prompt")
    return not (isinstance(prompt, list) and len(prompt) > 1)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def continuation(parsed: ParsedRequest, target: Target, text: str, used: int) -> tuple[ParsedRequest, str]:
    """The request asking ``target`` to go on from ``text`` (``used``: tokens already streamed), and the
    text the client has that the prefill leaves out (for ``Splice`` to trim)."""
    payload: dict[str, Any] = dict(parsed.payload)
    payload["stream"] = True
    for name in ("max_tokens", "max_completion_tokens"):
        if isinstance(payload.get(name), int):
            payload[name] = max(1, payload[name] - used)
    prefill = text.rstrip() if target.protocol == "anthropic" else text  # Anthropic refuses trailing spaces
    skip = text[len(prefill) :]
    messages: list[Mapping[str, Any]] = list(parsed.messages)
    if prefill:
        if parsed.kind == "completions" and target.protocol == "openai":
            payload["prompt"] = _text(messages[0].get("content")) + prefill
        elif messages[-1].get("role") == "assistant":  # the client's own prefill: ours extends it
            messages[-1] = {**messages[-1], "content": _text(messages[-1].get("content")) + prefill}
        else:
            messages.append({"role": "assistant", "content": prefill})
        if parsed.kind == "chat":
            payload["messages"] = messages
            if not target.is_cloud:  # fleet pods: vLLM wants it said (llama.cpp's server continues anyway)
                payload["continue_final_message"] = True
                payload["add_generation_prompt"] = False
    request = ParsedRequest(parsed.kind, payload, parsed.model, True, parsed.wants_usage, messages, raw=b"")
    return request, skip


@dataclass(slots=True)
class Failover:
    """One streamed request's way on, built before it is served (only for tasks with failover on)."""

    session: aiohttp.ClientSession
    client: httpclient.Client
    metrics: Metrics
    targets: Mapping[str, Target]
    chain: tuple[str, ...]
    task: str
    switches: int
    parsed: ParsedRequest
    started: float
    counterfactual: Price | None
    grant: access.Grant | None

    def _prompt_estimate(self, extra: str = "") -> int:
        texts = [_text(m.get("content")) for m in self.parsed.messages]
        return streams.estimate_prompt_tokens([*texts, extra] if extra else texts)

    async def resume(
        self,
        slot: relaying.Slot,
        upstream: aiohttp.ClientResponse | httpclient.Response,
        target: Target,
        sent: list[bytes],
        why: str,
    ) -> AsyncIterator[bytes]:
        """Bill and release the broken leg, then continue on the next upstreams (at most ``switches``)."""
        chat = self.parsed.kind == "chat"
        partial = splicing.partial_of(b"".join(sent), chat)
        upstream.close()  # drop the broken socket now, not when the whole stream ends
        usage = pricing.Usage(self._prompt_estimate(), partial.chunks)
        estimated = True
        try:
            slot.settle(usage)
        finally:
            slot.release("error", health=False)
        if partial.finished:  # only the end went missing: nothing to continue
            wants = self.parsed.wants_usage and not partial.usage_sent
            yield splicing.tail(partial, usage if wants else None, estimated, [])
            return
        if not partial.continuable:
            yield relaying.stream_error(why)
            return
        record: list[dict[str, Any]] = []
        names = list(self.chain[self.chain.index(target.name) + 1 :])
        left = target.name
        while len(record) < self.switches:
            opened = await self._open(names, partial)
            if opened is None:
                break
            leg_target, leg_slot, leg, skip = opened
            response = leg.response
            self.metrics.failovers.labels(left, self.task, "midstream").inc()
            log.warning(
                "task %s: %s; continuing the stream on %s after %d characters",
                self.task,
                why,
                leg_target.name,
                len(partial.text),
            )
            record.append({"from": left, "to": leg_target.name, "after_chars": len(partial.text), "why": why})
            splice = splicing.Splice(partial, chat, skip)
            outcome: relaying.Outcome = "cancelled"
            prompt = 0
            try:
                try:
                    prompt = self._prompt_estimate(partial.text)
                    async for out in self._relay(leg_target, leg, splice, prompt):
                        yield out
                    why = f"{leg_target.name} ended the stream early"
                except _BROKE as exc:
                    why = f"{leg_target.name} stream broke: {type(exc).__name__}"
                spent = splice.usage if splice.done and splice.usage is not None else None
                if spent is None:
                    spent = pricing.Usage(prompt, splice.chunks)
                estimated = estimated or splice.estimated or not splice.done
                usage = pricing.Usage(
                    usage.prompt_tokens + spent.prompt_tokens,
                    usage.completion_tokens + spent.completion_tokens,
                )
                outcome = "ok" if splice.done else "error"
                leg_slot.settle(spent)
            finally:
                if outcome == "ok":
                    response.release()
                    leg_slot.release("ok", health=True)
                else:
                    response.close()
                    leg_slot.release(outcome, health=False if outcome == "error" else None)
            if splice.done:
                yield splicing.tail(partial, usage if self.parsed.wants_usage else None, estimated, record)
                return
            partial.text += splice.text
            partial.chunks += splice.chunks
            left = leg_target.name
        yield relaying.stream_error(why)

    async def _open(
        self, names: list[str], partial: splicing.Partial
    ) -> tuple[Target, relaying.Slot, forwarding.Opened, str] | None:
        """Open the continuation on the first of ``names`` that takes it (consumed as they are tried)."""
        while names:
            target = self.targets[names.pop(0)]
            if not target.continues:
                continue
            endpoint = target.pool.pick(target.max_in_flight)
            if not isinstance(endpoint, Endpoint):  # no waiting for a cold model mid-answer
                continue
            request, skip = continuation(self.parsed, target, partial.text, partial.chunks)
            slot = relaying.Slot(
                self.metrics, target, endpoint, self.task, self.started, self.counterfactual, self.grant
            )
            try:
                opened = await forwarding.open_response(self.session, self.client, target, request, endpoint)
            except UpstreamError as exc:
                slot.release("failed", health=False)
                log.info("task %s: continuation on %s failed: %s", self.task, target.name, exc)
                continue
            except BaseException:
                slot.release("cancelled", health=None)
                raise
            if opened.response.status != 200:
                opened.response.close()
                slot.release("client_error", health=None)
                log.info(
                    "task %s: %s refused the continuation (HTTP %d)",
                    self.task,
                    target.name,
                    opened.response.status,
                )
                continue
            return target, slot, opened, skip
        return None

    async def _relay(
        self, target: Target, opened: forwarding.Opened, splice: splicing.Splice, prompt_estimate: int
    ) -> AsyncIterator[bytes]:
        """One continuation leg's events as more of the client's stream; ends at its ``[DONE]``."""
        translator: anthropic.StreamTranslator | streams.SseRelay
        if target.protocol == "anthropic":
            translator = anthropic.StreamTranslator(self.parsed.kind == "chat", True)
        else:
            translator = streams.SseRelay(False, prompt_estimate)
        content = opened.response.content
        chunk = opened.first
        while chunk:
            out = splice.feed(translator.feed(chunk))
            if translator.error is not None:
                raise ValueError(translator.error)
            if out:
                yield out
            if splice.done:
                return
            chunk = await content.readany()
