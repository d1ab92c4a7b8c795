"""Who may call the router: API keys (``Authorization: Bearer``) looked up by sha256, or JWTs verified
against the identity provider's keys (``tokens``), their policies' rate limits, what they may be routed to,
and what happens when their cloud budget is spent.

The operator renders each key's sha256 and policy into the config (``RouterConfig.access``); the key itself
never reaches the router's config. A :class:`Keyring` lives as long as the process (buckets and in-flight
counts survive config reloads); a :class:`Grant` is one request's claim on its key, closed when the
response has been sent.

Errors are ``RequestError``s with OpenAI-shaped bodies: 401 (missing or unknown key, with
``WWW-Authenticate: Bearer``), 403 (task, model or cloud not allowed) and 429 with ``Retry-After``
(``rate_limited``, ``tokens_limited``, ``concurrency_limited``, ``budget_exhausted``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Mapping

from flotilla.api.routerconfig import AccessConfig, PolicyConfig
from flotilla.api.spend import seconds_to_next_month
from flotilla.router import tokens
from flotilla.router.limiting import TokenBucket
from flotilla.router.replies import RequestError
from flotilla.router.routing import Route
from flotilla.router.spending import Ledger
from flotilla.router.tokens import unauthorized as _unauthorized

BUDGET_HEADER = "x-flotilla-budget"
_BEARER = b"bearer "


def digest(key: str | bytes) -> str:
    """sha256 (hex) of a key, as the operator renders it."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).hexdigest()


def _too_many(message: str, code: str, wait: float) -> RequestError:
    return RequestError(429, message, code, headers={"retry-after": str(max(1, math.ceil(wait)))})


@dataclasses.dataclass(slots=True)
class KeyState:
    """One policy and its per-replica counters (kept across reloads while the limits stay)."""

    policy: PolicyConfig
    requests: TokenBucket | None
    tokens: TokenBucket | None
    in_flight: int = 0


class Keyring:
    """The keys of the current config; ``enabled`` is False when the config has no ``access`` (open)."""

    def __init__(self, ledger: Ledger, fetch: tokens.Fetch) -> None:
        self.ledger = ledger
        self.enabled = False
        self._fetch = fetch
        self._by_hash: dict[str, KeyState] = {}
        self._by_name: dict[str, KeyState] = {}
        self._verifier: tokens.Verifier | None = None

    def update(self, access: AccessConfig | None) -> None:
        """Take a new config's keys; a policy whose limits did not change keeps its buckets and count, an
        unchanged JWT setup its fetched keys."""
        self.enabled = access is not None
        now = time.monotonic()
        by_name: dict[str, KeyState] = {}
        jwt = access.jwt if access else None
        if jwt is None:
            self._verifier = None
        elif self._verifier is None or self._verifier.config != jwt:
            self._verifier = tokens.Verifier(jwt, self._fetch)
        for policy in access.policies if access else []:
            old = self._by_name.get(policy.name)
            if old is not None and old.policy.limits == policy.limits:
                old.policy = policy
                by_name[policy.name] = old
                continue
            limits = policy.limits
            rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
            by_name[policy.name] = KeyState(
                policy,
                TokenBucket(rpm, now) if rpm else None,
                TokenBucket(tpm, now) if tpm else None,
                old.in_flight if old else 0,
            )
        self._by_name = by_name
        self._by_hash = {k.sha256: by_name[k.name] for k in access.keys} if access else {}

    async def identify(self, authorization: bytes | None) -> KeyState:
        """The policy of an ``Authorization`` header value; 401 when missing, not Bearer, unknown or an
        invalid token, 403 when a valid token names no policy."""
        if not authorization:
            raise _unauthorized("missing API key: send Authorization: Bearer <key>")
        if authorization[:7].lower() != _BEARER:
            raise _unauthorized("the Authorization header must be Bearer <key>")
        credential = authorization[7:].strip()
        if self._verifier is not None and tokens.looks_like_jwt(credential):
            name = await self._verifier.policy_of(credential, time.monotonic())
            named = self._by_name.get(name)  # None only when a reload removed the policy meanwhile
            if named is None:
                raise _unauthorized(f"policy {name!r} no longer exists")
            return named
        state = self._by_hash.get(digest(credential))
        if state is None:
            raise _unauthorized("invalid API key")
        return state

    async def admit(self, authorization: bytes | None, now: float) -> Grant:
        """The grant for a request's ``Authorization`` header value: 401 when missing or unknown; 429 over the
        policy's requests-per-minute or concurrency limit."""
        state = await self.identify(authorization)
        limits = state.policy.limits
        if limits.concurrent_requests is not None and state.in_flight >= limits.concurrent_requests:
            raise _too_many(
                f"key {state.policy.name!r} has {state.in_flight} requests in flight "
                f"(limit {limits.concurrent_requests})",
                "concurrency_limited",
                1.0,
            )
        if state.requests is not None:
            wait = state.requests.take(1, now)
            if wait:
                raise _too_many(
                    f"key {state.policy.name!r} is over {limits.requests_per_minute} requests per minute",
                    "rate_limited",
                    wait,
                )
        state.in_flight += 1
        return Grant(state, self.ledger)


class Grant:
    """One admitted request: charges its tokens, checks its route, counts its cloud spend, then closes."""

    __slots__ = ("_closed", "_state", "charged", "ledger", "used")

    def __init__(self, state: KeyState, ledger: Ledger) -> None:
        self._state = state
        self.ledger = ledger
        self.charged = 0
        self.used: int | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return self._state.policy.name

    @property
    def capture(self) -> bool:
        """Whether the policy lets its requests be captured for distillation."""
        return self._state.policy.capture

    def charge(self, tokens: int, now: float) -> None:
        """Take the request's estimated tokens (prompt estimate + max_tokens); 429 when over the limit."""
        bucket = self._state.tokens
        if bucket is None:
            return
        wait = bucket.take(tokens, now)
        if wait:
            limit = self._state.policy.limits.tokens_per_minute
            raise _too_many(f"key {self.name!r} is over {limit} tokens per minute", "tokens_limited", wait)
        self.charged = tokens

    def budget_exhausted(self) -> bool:
        budget = self._state.policy.monthly_budget_usd
        return budget is not None and self.ledger.spent(self.name) >= budget

    def authorize(
        self, route: Route, chains: Mapping[str, tuple[str, ...]], cloud: Mapping[str, bool]
    ) -> tuple[Route, dict[str, str]]:
        """The route narrowed to what the key may use, and headers to add; 403 or 429 when nothing is left.

        ``cloud`` maps every upstream name to whether it is a cloud fallback.
        """
        policy = self._state.policy
        if policy.tasks and route.task not in policy.tasks:
            raise RequestError(
                403, f"key {self.name!r} may not use task {route.task!r}", "task_not_allowed", "model"
            )
        if route.reason == "model":
            named = route.chain[0]
            if policy.models and named not in policy.models:
                raise RequestError(
                    403, f"key {self.name!r} may not use model {named!r}", "model_not_allowed", "model"
                )
            if cloud[named] and not policy.cloud_fallbacks:
                raise RequestError(
                    403, f"key {self.name!r} may not use cloud fallbacks", "cloud_not_allowed", "model"
                )
        allowed = [n for n in route.chain if not policy.models or n in policy.models]
        headers: dict[str, str] = {}
        if not policy.cloud_fallbacks:
            allowed = [n for n in allowed if not cloud[n]]
        elif self.budget_exhausted():
            headers[BUDGET_HEADER] = "exhausted"
            if any(cloud[n] for n in allowed):
                if policy.on_budget_exhausted == "reject":
                    raise _too_many(
                        f"key {self.name!r} has spent its monthly cloud budget "
                        f"(${policy.monthly_budget_usd:g})",
                        "budget_exhausted",
                        seconds_to_next_month(),
                    )
                allowed = [n for n in allowed if not cloud[n]]
                if not allowed:  # the client named a cloud model: its task's own models instead
                    task_chain = chains.get(route.task, ())
                    allowed = [
                        n for n in task_chain if not cloud[n] and (not policy.models or n in policy.models)
                    ]
        if not allowed:
            raise RequestError(
                403, f"key {self.name!r} may use no model that serves task {route.task!r}", "no_allowed_model"
            )
        chain = tuple(allowed)
        return (route if chain == route.chain else dataclasses.replace(route, chain=chain)), headers

    def settle(self, prompt_tokens: int, completion_tokens: int, dollars: float, is_cloud: bool) -> None:
        """Record an answer's usage (tokens for the limit; dollars for the budget when a cloud served it)."""
        self.used = (self.used or 0) + prompt_tokens + completion_tokens
        if is_cloud:
            self.ledger.add(self.name, dollars)

    def close(self, now: float) -> None:
        """The response is sent: free the concurrency slot, settle the token charge against the usage."""
        if self._closed:
            return
        self._closed = True
        self._state.in_flight -= 1
        bucket = self._state.tokens
        if bucket is not None and self.used is not None:
            bucket.adjust(self.used - self.charged, now)
