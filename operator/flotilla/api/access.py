"""`spec.access`: who may call the fleet's router, for what, how often, and with how much cloud budget.

Keys are issued from Secrets the fleet names; the operator reads them and renders only their sha256 into
the router config (``routerconfig.AccessConfig``), never the key itself. JWT bearer tokens from the
organisation's identity provider are checked against its JWKS; a claim of the token names its policy.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from flotilla.api import messages
from flotilla.api.common import MAX_LIST, MAX_SHORT, Name, SecretKeySelector, SpecModel, cel_rules

BudgetAction = Literal["downgrade", "reject"]
JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
"""Asymmetric algorithms only: a shared-secret (HS*) token could be minted by anyone holding the secret,
and `none` by anyone at all."""


def _default_algorithms() -> list[JwtAlgorithm]:
    return ["RS256", "ES256"]


JWKS_URL_PATTERN = r"^https?://[^/?#@ ]+([/?#].*)?$"


class KeyLimits(SpecModel):
    """Rate limits of one key, enforced by each router replica on its own (see docs/router.md)."""

    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """Requests per minute (a token bucket: bursts up to this many)."""
    tokens_per_minute: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    """Prompt plus completion tokens per minute: a request is charged its prompt estimate plus max_tokens
    up front and settled on the usage the model reports."""
    concurrent_requests: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """Requests in flight at once."""


class AccessPolicy(SpecModel):
    """What the callers of one policy (an API key, or the JWTs naming it) may do; its limits and budget are
    shared by all of them."""

    name: Name
    """Name of the policy: in metrics, status and logs (never the key)."""
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
    capture: bool = True
    """Whether this policy's requests may be captured for distillation where a task captures; false: never
    (e.g. a key used for confidential data)."""


class AccessKey(AccessPolicy):
    """One API key (`Authorization: Bearer <key>`) and what it may do."""

    secret_ref: SecretKeySelector
    """The Secret key holding the API key. The operator reads it and renders only its sha256."""


class JwtAccess(SpecModel):
    """JWT bearer tokens issued by an identity provider, checked against its published keys (JWKS)."""

    model_config = cel_rules(
        (f"self.jwksURL.matches('{JWKS_URL_PATTERN}')", messages.JWKS_URL_SCHEME),
        (
            "self.policies.all(a, self.policies.exists_one(b, b.name == a.name))",
            messages.DUPLICATE_ACCESS_KEY,
        ),
    )

    jwks_url: Annotated[str, Field(max_length=1024)] = Field(alias="jwksURL")
    """Where the router fetches the provider's signing keys (https; plain http only to hosts the operator's
    settings name). Fetched at the first token, again every 10 minutes and when a token names a key id the
    router does not know (at most every 30 s)."""
    issuer: Annotated[str, Field(min_length=1, max_length=1024)]
    """Required `iss` claim."""
    audience: Annotated[str, Field(min_length=1, max_length=MAX_SHORT)]
    """Required `aud` claim (one of the token's audiences)."""
    algorithms: Annotated[list[JwtAlgorithm], Field(min_length=1, max_length=10)] = Field(
        default_factory=_default_algorithms
    )
    """Accepted signature algorithms (asymmetric only)."""
    policy_claim: Annotated[str, Field(min_length=1, max_length=MAX_SHORT)] = "flotilla_policy"
    """Claim naming the token's policy: a string, or a list (the first name that is a policy wins)."""
    policies: Annotated[list[AccessPolicy], Field(min_length=1, max_length=MAX_LIST)]
    """Policies tokens may name (at least one, at most 32); a token naming none of them gets 403."""

    @model_validator(mode="after")
    def _url(self) -> JwtAccess:
        if not re.match(JWKS_URL_PATTERN, self.jwks_url):
            raise ValueError(messages.JWKS_URL_SCHEME)
        return self  # duplicate policy names: AccessSpec checks them across keys and JWT policies


class AccessSpec(SpecModel):
    """Client authentication for the router. Without it the router is open (allowed only for a ClusterIP
    router Service)."""

    model_config = cel_rules(
        ("has(self.jwt) || (has(self.keys) && size(self.keys) > 0)", messages.ACCESS_EMPTY),
        ("!has(self.keys) || self.keys.all(a, self.keys.exists_one(b, b.name == a.name))",
         messages.DUPLICATE_ACCESS_KEY),
        ("!has(self.keys) || !has(self.jwt) || "
         "!self.keys.exists(k, self.jwt.policies.exists(p, p.name == k.name))",
         messages.DUPLICATE_ACCESS_KEY),
    )  # fmt: skip

    keys: Annotated[list[AccessKey], Field(max_length=MAX_LIST)] = Field(default_factory=list)
    """API keys and their policies (at most 32)."""
    jwt: JwtAccess | None = None
    """JWT bearer tokens (optional): the router tells them from API keys by their shape."""

    @property
    def policies(self) -> list[AccessPolicy]:
        """Every policy: the keys', then the JWT policies (names are unique across both)."""
        return [*self.keys, *(self.jwt.policies if self.jwt else [])]

    @model_validator(mode="after")
    def _unique(self) -> AccessSpec:
        if not self.keys and self.jwt is None:
            raise ValueError(messages.ACCESS_EMPTY)
        names = [p.name for p in self.policies]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{messages.DUPLICATE_ACCESS_KEY} ({', '.join(duplicates)})")
        return self
