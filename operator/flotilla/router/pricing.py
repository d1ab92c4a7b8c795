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


def usage_of(body: Mapping[str, Any] | None) -> Usage | None:
    """The ``usage`` object of an OpenAI response or chunk, or None when absent or malformed."""
    usage = body.get("usage") if body else None
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)


def bill(usage: Usage, price: Price, counterfactual: Price | None) -> Bill:
    """``saved`` is the counterfactual cost minus the real one, never negative; 0 without a cloud fallback."""
    dollars = price.cost(usage.prompt_tokens, usage.completion_tokens)
    saved = 0.0
    if counterfactual is not None:
        saved = max(0.0, counterfactual.cost(usage.prompt_tokens, usage.completion_tokens) - dollars)
    return Bill(usage, dollars, saved)
