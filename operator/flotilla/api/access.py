"""`spec.access`: who may call the fleet's router, for what, how often, and with how much cloud budget.

Keys are issued from Secrets the fleet names; the operator reads them and renders only their sha256 into
the router config (``routerconfig.AccessConfig``), never the key itself.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from flotilla.api import messages
from flotilla.api.common import MAX_LIST, Name, SecretKeySelector, SpecModel, cel_rules

BudgetAction = Literal["downgrade", "reject"]


class KeyLimits(SpecModel):
    """Rate limits of one key, enforced by each router replica on its own (see docs/router.md)."""

    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """Requests per minute (a token bucket: bursts up to this many)."""
    tokens_per_minute: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    """Prompt plus completion tokens per minute: a request is charged its prompt estimate plus max_tokens
    up front and settled on the usage the model reports."""
    concurrent_requests: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """Requests in flight at once."""


class AccessKey(SpecModel):
    """One API key (`Authorization: Bearer <key>`) and what it may do."""

    name: Name
    """Name of the key's policy: in metrics, status and logs (never the key)."""
    secret_ref: SecretKeySelector
    """The Secret key holding the API key. The operator reads it and renders only its sha256."""
    tasks: Annotated[list[Name], Field(max_length=MAX_LIST)] = Field(default_factory=list)
    """Tasks the key may be routed to; empty: every task."""
    models: Annotated[list[Name], Field(max_length=MAX_LIST)] = Field(default_factory=list)
    """Fleet models and fallbacks the key may be served by; empty: every one."""
    cloud_fallbacks: bool = False
    """Whether the key may be served by cloud fallbacks (spending the provider keys)."""
    limits: KeyLimits | None = None
    """Rate limits; none when unset."""
    monthly_budget_usd: Annotated[float, Field(ge=0)] | None = Field(None, alias="monthlyBudgetUSD")
    """Cloud spend allowed per calendar month (UTC), in US dollars; unlimited when unset."""
    on_budget_exhausted: BudgetAction = "downgrade"
    """When the month's budget is spent: downgrade (serve from the fleet's own models only, with header
    x-flotilla-budget: exhausted) or reject (HTTP 429 budget_exhausted)."""


class AccessSpec(SpecModel):
    """Client authentication for the router. Without it the router is open (allowed only for a ClusterIP
    router Service)."""

    model_config = cel_rules(
        ("self.keys.all(a, self.keys.exists_one(b, b.name == a.name))", messages.DUPLICATE_ACCESS_KEY)
    )

    keys: Annotated[list[AccessKey], Field(min_length=1, max_length=MAX_LIST)]
    """API keys and their policies (at least one, at most 32)."""

    @model_validator(mode="after")
    def _unique(self) -> AccessSpec:
        names = [k.name for k in self.keys]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{messages.DUPLICATE_ACCESS_KEY} ({', '.join(duplicates)})")
        return self
