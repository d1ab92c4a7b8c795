"""JWT bearer tokens: verified against the identity provider's published keys (JWKS), mapped to a policy by
one of their claims.

PyJWT does the cryptography and the claim checks. What is written here: fetching the key set without
blocking the event loop (PyJWT's ``PyJWKClient`` fetches synchronously with urllib), keeping it fresh
(every ``JWKS_MAX_AGE``, and when a token names a key id the router does not know, at most every
``REFETCH_INTERVAL``, so a rotation at the provider is picked up without a restart and a flood of made-up key
ids cannot turn the router into a load generator against the provider; after a failed fetch, again at most
every ``RETRY_SECONDS``), and remembering tokens already
verified for a short while, so a client reusing its token costs a dict lookup instead of a signature check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable

import aiohttp
import jwt

from flotilla.api.routerconfig import JwtConfig
from flotilla.router.replies import RequestError

log = logging.getLogger(__name__)

JWKS_MAX_AGE = 600.0
"""Seconds a fetched key set is used before it is fetched again."""
REFETCH_INTERVAL = 30.0
"""Least seconds between fetches triggered by unknown key ids."""
RETRY_SECONDS = 5.0
"""Least seconds between attempts while the key set is missing or stale and fetches fail."""
VERIFIED_SECONDS = 60.0
"""Longest a verified token is remembered (never past its ``exp``)."""
VERIFIED_LIMIT = 10_000
"""Most tokens remembered; past it the expired ones go, and all of them if that is not enough."""
LEEWAY_SECONDS = 30
"""Clock skew allowed on ``exp``, ``nbf`` and ``iat``."""
JWKS_MAX_BYTES = 1 << 20

Fetch = Callable[[str], Awaitable[bytes]]
"""Fetches a URL's body; raises on any failure (``OSError``, ``asyncio.TimeoutError``, ``ValueError``)."""


def looks_like_jwt(token: bytes) -> bool:
    """A compact JWS (three dot-separated parts, a JSON header); API keys never look like this."""
    return token.startswith(b"eyJ") and token.count(b".") == 2


def unauthorized(message: str, code: str = "invalid_api_key") -> RequestError:
    return RequestError(401, message, code, headers={"www-authenticate": "Bearer"})


class Verifier:
    """Tokens of one ``spec.access.jwt``: ``policy_of(token)`` is the name of the policy a valid token
    names; every failure is a ``RequestError`` (401 invalid, 403 no policy, 503 keys unavailable)."""

    def __init__(self, config: JwtConfig, fetch: Fetch) -> None:
        self.config = config
        self._fetch = fetch
        self._policies = {p.name for p in config.policies}
        self._keys: dict[str | None, jwt.PyJWK] | None = None
        self._fetched_at = -math.inf  # monotonic time of the last fetch attempt
        self._kid_fetched_at = -math.inf  # ... of the last one an unknown key id triggered
        self._loaded_at = -math.inf  # monotonic time of the last successful fetch
        self._lock = asyncio.Lock()
        self._verified: dict[bytes, tuple[str, float]] = {}

    async def policy_of(self, token: bytes, now: float) -> str:
        """The policy ``token`` names, once its signature and claims are verified."""
        remembered = self._verified.get(token)
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("malformed bearer token") from None
        algorithm = header.get("alg")
        if algorithm not in self.config.algorithms:
            raise unauthorized(f"token algorithm {algorithm!r} is not accepted")
        key = await self._key(header.get("kid"), now)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired", "token_expired") from None
        except jwt.PyJWTError as exc:
            raise unauthorized(f"invalid token: {exc}") from None
        policy = self._policy(claims.get(self.config.policy_claim))
        lifetime = float(claims["exp"]) + LEEWAY_SECONDS - time.time()
        self._remember(token, policy, now + min(lifetime, VERIFIED_SECONDS), now)
        return policy

    def _policy(self, claim: object) -> str:
        names = claim if isinstance(claim, list) else [claim]
        for name in names:
            if isinstance(name, str) and name in self._policies:
                return name
        raise RequestError(
            403,
            f"the token's {self.config.policy_claim} claim names no policy of this fleet",
            "no_policy",
        )

    def _remember(self, token: bytes, policy: str, until: float, now: float) -> None:
        if len(self._verified) >= VERIFIED_LIMIT:
            self._verified = {t: v for t, v in self._verified.items() if v[1] > now}
            if len(self._verified) >= VERIFIED_LIMIT:
                self._verified.clear()
        self._verified[token] = (policy, until)

    async def _key(self, kid: object, now: float) -> jwt.PyJWK:
        if not isinstance(kid, (str, type(None))):
            raise unauthorized("malformed bearer token: kid must be a string")
        stale = self._keys is None or now - self._loaded_at > JWKS_MAX_AGE
        if stale and now - self._fetched_at > RETRY_SECONDS:
            await self._refresh()
        elif (
            self._keys is not None and kid not in self._keys and now - self._kid_fetched_at > REFETCH_INTERVAL
        ):
            self._kid_fetched_at = now
            await self._refresh()
        keys = self._keys
        if keys is None:
            raise RequestError(
                503,
                "the identity provider's keys (JWKS) cannot be fetched",
                "jwks_unavailable",
                headers={"retry-after": str(int(RETRY_SECONDS))},
            )
        key = keys.get(kid)
        if key is None and kid is None and len(keys) == 1:
            key = next(iter(keys.values()))  # a token without kid, a provider with one key
        if key is None:
            raise unauthorized("the token is signed with a key the identity provider does not publish")
        return key

    async def _refresh(self) -> None:
        """Fetch the key set once for all requests waiting on it; keep the old one when the fetch fails."""
        attempt = self._fetched_at
        async with self._lock:
            if self._fetched_at != attempt:
                return  # another request fetched while this one waited
            self._fetched_at = time.monotonic()
            try:
                body = await self._fetch(self.config.jwks_url)
                keys = parse_jwks(body)
            except (TimeoutError, OSError, ValueError, jwt.PyJWTError) as exc:
                log.warning("JWKS %s not fetched (%s): %s", self.config.jwks_url, type(exc).__name__, exc)
                return
            self._keys, self._loaded_at = keys, self._fetched_at
            log.info("JWKS %s: %d keys", self.config.jwks_url, len(keys))


FETCH_TIMEOUT = aiohttp.ClientTimeout(total=5)


async def fetch_with(session: aiohttp.ClientSession, url: str) -> bytes:
    """GET ``url`` (the JWKS) with a short timeout and a size cap; ``OSError``/``ValueError`` on failure."""
    try:
        async with session.get(url, timeout=FETCH_TIMEOUT, allow_redirects=False) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            body = await response.content.read(JWKS_MAX_BYTES + 1)
    except aiohttp.ClientError as exc:
        raise OSError(str(exc) or type(exc).__name__) from exc
    return body


def parse_jwks(body: bytes) -> dict[str | None, jwt.PyJWK]:
    """The usable keys of a JWKS document by key id; raises ``ValueError`` or ``PyJWTError`` when none."""
    if len(body) > JWKS_MAX_BYTES:
        raise ValueError(f"JWKS larger than {JWKS_MAX_BYTES} bytes")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("JWKS is not a JSON object")
    keys = jwt.PyJWKSet.from_dict(document).keys  # skips keys of unknown types; raises when none is left
    return {k.key_id: k for k in keys if (k.public_key_use or "sig") == "sig"}
