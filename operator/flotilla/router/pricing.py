"""Price one response from its usage, and what it would have cost on the task's first cloud fallback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flotilla.api.routerconfig import Price


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Bill:
    """Dollars for one response: what it cost, and how much less than the counterfactual cloud fallback."""

    usage: Usage
    dollars: float
    saved: float


def count(value: object) -> int | None:
    """A token count an upstream reported: a non-negative integer, else None (never an exception).

    Upstreams are not trusted: a negative, fractional, boolean or text count means "unknown". (Counting one
    would also fail later: a Prometheus counter cannot go down.)"""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def usage(prompt: object, completion: object) -> Usage | None:
    """``Usage`` from two reported counts; None (no usage) when either is not a valid count."""
    prompt_tokens, completion_tokens = count(prompt), count(completion)
    if prompt_tokens is None or completion_tokens is None:
        return None
    return Usage(prompt_tokens, completion_tokens)


def usage_of(body: Mapping[str, Any] | None) -> Usage | None:
    """The ``usage`` object of an OpenAI response or chunk, or None when absent or malformed."""
    found = body.get("usage") if body else None
    if not isinstance(found, Mapping):
        return None
    return usage(found.get("prompt_tokens", 0), found.get("completion_tokens", 0))


def bill(usage: Usage, price: Price, counterfactual: Price | None) -> Bill:
    """``saved`` is the counterfactual cost minus the real one, never negative; 0 without a cloud fallback."""
    dollars = price.cost(usage.prompt_tokens, usage.completion_tokens)
    saved = 0.0
    if counterfactual is not None:
        saved = max(0.0, counterfactual.cost(usage.prompt_tokens, usage.completion_tokens) - dollars)
    return Bill(usage, dollars, saved)
