"""Test-time compute: ask one fleet model for n answers to the same request and merge them into one reply.

One request with ``n`` when the model's runtime answers it (vLLM), else n parallel requests with seeds
``seed``, ``seed + 1``, ... (llama.cpp serves one choice per request). Every sample is priced: the merged
reply's usage and cost are the sums. Which sample is served is ``answers.select``'s choice (``escalating``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flotilla.api.routerconfig import Sampling
from flotilla.router import pricing, relaying, requesting
from flotilla.router.replies import Plain, RequestError
from flotilla.router.snapshots import Snapshot

Walk = Callable[[requesting.ParsedRequest, tuple[str, ...]], Awaitable[Plain | relaying.Stream]]
"""Send a request along a chain of upstreams (``handling._walk`` bound to one client request)."""
COST_HEADER = "x-flotilla-cost-usd"


@dataclass(slots=True)
class Sampled:
    """The samples' merged reply: ``data`` is the first reply's body with every sample in ``choices``."""

    reply: Plain
    data: dict[str, Any]
    choices: list[dict[str, Any]]
    usage: pricing.Usage | None
    dollars: float
    one_answer: pricing.Usage | None
    """The usage of one average answer: what the counterfactual cloud request would have used."""


def sampled_request(parsed: requesting.ParsedRequest, settings: Sampling, seed: int, n: int) -> Any:
    """``parsed`` with a sampling temperature (unless the request set one above 0), ``seed`` and ``n``."""
    payload = dict(parsed.payload)
    temperature = payload.get("temperature")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or temperature <= 0:
        payload["temperature"] = settings.temperature
    payload["seed"] = seed
    if n > 1:
        payload["n"] = n
    else:
        payload.pop("n", None)
    return dataclasses.replace(parsed, payload=payload, raw=b"")


async def sample(
    snapshot: Snapshot, parsed: requesting.ParsedRequest, model: str, settings: Sampling, walk: Walk
) -> Sampled | None:
    """``settings.samples`` answers from ``model``; None when not one request succeeded."""
    k = settings.samples
    base = parsed.payload.get("seed")
    if isinstance(base, bool) or not isinstance(base, int):
        base = random.randrange(2**31)
    if snapshot.targets[model].multiple_choices:
        attempts = [walk(sampled_request(parsed, settings, base, k), (model,))]
    else:
        attempts = [walk(sampled_request(parsed, settings, base + i, 1), (model,)) for i in range(k)]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    replies: list[Plain] = []
    for result in results:
        if isinstance(result, Plain) and result.status == 200:
            replies.append(result)
        elif isinstance(result, relaying.Stream):  # not for a non-streamed request; never left open
            await result.finish()
        elif isinstance(result, BaseException) and not isinstance(result, RequestError):
            raise result
    return merge(replies) if replies else None


def merge(replies: list[Plain]) -> Sampled | None:
    """One reply holding every choice of ``replies`` (re-indexed), their summed usage and cost."""
    datas: list[dict[str, Any]] = []
    for reply in replies:
        try:
            data = json.loads(reply.body)
        except (ValueError, RecursionError):
            continue
        if isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]:
            datas.append(data)
    if not datas:
        return None
    choices = [c for d in datas for c in d["choices"] if isinstance(c, dict)]
    for index, choice in enumerate(choices):
        choice["index"] = index
    usages = [pricing.usage_of(d) for d in datas]
    known = [u for u in usages if u is not None]
    total = (
        pricing.Usage(sum(u.prompt_tokens for u in known), sum(u.completion_tokens for u in known))
        if known
        else None
    )
    one = None
    if total is not None and choices:
        one = pricing.Usage(total.prompt_tokens // len(known), total.completion_tokens // len(choices))
    dollars = sum(_cost(r) for r in replies)
    return Sampled(replies[0], datas[0], choices, total, dollars, one)


def _cost(reply: Plain) -> float:
    try:
        return float(reply.headers.get(COST_HEADER, 0.0))
    except ValueError:
        return 0.0
