"""JWT bearer tokens over real HTTP: a real router process checks tokens minted here against the JWKS a real
HTTP server publishes; rotation at the provider, bad tokens, an unreachable JWKS, and JWT policies held to
the same limits and budgets as API keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from routerkit import chat, fleet_config, free_port

COMPLETIONS = "/v1/chat/completions"
ISSUER = "https://idp.test"
AUDIENCE = "flotilla-test"


class Jwks:
    """A real HTTP server publishing a JWKS the test can rotate, counting the fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key
        self.fetches = 0
        self.up = True
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.fetches += 1
                if not jwks.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"keys": [jwks.public(kid) for kid in jwks.keys]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, kid: str, kind: str = "rsa") -> None:
        self.keys[kid] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )

    def public(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        algorithm = (
            jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
        )
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
        return {**jwk, "kid": kid, "use": "sig"}

    def token(
        self, kid: str, expires_in: float = 300, headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        key = self.keys[kid]
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": int(time.time() + expires_in),
            "sub": "u1",
            **claims,
        }
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    server = Jwks()
    server.add("k1")
    yield server
    server.stop()


def _policy(name: str, **rest: Any) -> dict[str, Any]:
    return {"name": name, **rest}


def _config(
    pod_url: str, cloud_url: str, jwks_url: str, *policies: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    config = fleet_config(pod_url, cloud_url)
    config["access"] = {
        "keys": [{"name": "ci", "sha256": hashlib.sha256(b"secret-ci").hexdigest()}],
        "jwt": {
            "jwksURL": jwks_url,
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "policies": list(policies),
            **extra,
        },
    }
    return config


def _post(router: Any, credential: str, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    headers["authorization"] = f"Bearer {credential}"
    return httpx.post(f"{router.url}{COMPLETIONS}", json=body or chat("hi"), headers=headers, timeout=30)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code, error
    return str(error["message"])


def test_a_valid_token_is_served_and_bad_ones_get_401_or_403(make_router, clean_flaky, cloud, jwks):
    router = make_router(_config(clean_flaky.url, cloud.url, jwks.url, _policy("team-a"), _policy("team-b")))
    assert _post(router, jwks.token("k1", flotilla_policy="team-a")).status_code == 200
    # a list claim: the first name that is a policy wins
    assert _post(router, jwks.token("k1", flotilla_policy=["admins", "team-b"])).status_code == 200
    assert _post(router, "secret-ci").status_code == 200  # API keys work beside tokens

    jwks.add("stranger")  # a key the provider does not publish
    unpublished = jwks.token("stranger", flotilla_policy="team-a")
    del jwks.keys["stranger"]
    public_pem = (
        jwks.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode()
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time() + 300), "flotilla_policy": "team-a"}
    confused = _hs256(header, json.dumps(claims).encode(), public_pem)  # the RS256 public key as HMAC secret
    unsigned = (
        _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
        + "."
        + _b64(json.dumps(claims).encode())
        + "."
    )
    cases = {
        "expired": (jwks.token("k1", expires_in=-120, flotilla_policy="team-a"), "token expired"),
        "audience": (jwks.token("k1", aud="other", flotilla_policy="team-a"), "invalid token"),
        "issuer": (jwks.token("k1", iss="https://evil.test", flotilla_policy="team-a"), "invalid token"),
        "unpublished key": (unpublished, "key the identity provider does not publish"),
        "algorithm confusion": (confused, "'HS256' is not accepted"),
        "alg none": (unsigned, "'none' is not accepted"),
        "tampered": (_tamper(jwks.token("k1", flotilla_policy="team-a")), "invalid token"),
        "garbage": ("eyJhbGciOi.x.y", "malformed bearer token"),
    }
    for case, (credential, message) in cases.items():
        response = _post(router, credential)
        code = "token_expired" if case == "expired" else "invalid_api_key"
        assert message in _error(response, 401, code), case
        assert response.headers["www-authenticate"] == "Bearer"
    assert "names no policy" in _error(
        _post(router, jwks.token("k1", flotilla_policy="nobody")), 403, "no_policy"
    )
    assert "names no policy" in _error(_post(router, jwks.token("k1")), 403, "no_policy")
    listed = httpx.get(
        f"{router.url}/v1/models",
        headers={"authorization": f"Bearer {jwks.token('k1', flotilla_policy='team-a')}"},
        timeout=5,
    )
    assert listed.status_code == 200


def test_rotation_at_the_provider_is_picked_up_and_unknown_kids_do_not_flood_it(
    make_router, clean_flaky, cloud, jwks
):
    router = make_router(_config(clean_flaky.url, cloud.url, jwks.url, _policy("team-a")))
    assert _post(router, jwks.token("k1", flotilla_policy="team-a")).status_code == 200
    assert jwks.fetches == 1
    jwks.add("k2", kind="ec")  # the provider rotates to an ES256 key
    del jwks.keys["k1"]
    assert _post(router, jwks.token("k2", flotilla_policy="team-a")).status_code == 200
    assert jwks.fetches == 2
    for i in range(20):  # made-up key ids: one fetch per REFETCH_INTERVAL at most
        jwks.add(f"x{i}")
        bogus = jwks.token(f"x{i}", flotilla_policy="team-a")
        del jwks.keys[f"x{i}"]
        _error(_post(router, bogus), 401, "invalid_api_key")
    assert jwks.fetches == 2


def test_an_unreachable_jwks_gives_503_and_api_keys_keep_working(make_router, clean_flaky, cloud, jwks):
    jwks.up = False
    router = make_router(_config(clean_flaky.url, cloud.url, jwks.url, _policy("team-a")))
    response = _post(router, jwks.token("k1", flotilla_policy="team-a"))
    assert "cannot be fetched" in _error(response, 503, "jwks_unavailable")
    assert response.headers["retry-after"] == "5"
    jwks.up = True  # the next attempt comes after the retry delay, then tokens are served
    time.sleep(5.5)
    assert _post(router, jwks.token("k1", flotilla_policy="team-a")).status_code == 200
    assert _post(router, "secret-ci").status_code == 200


def test_a_token_policy_has_limits_and_a_budget_like_a_key(make_router, clean_flaky, cloud, jwks):
    router = make_router(
        _config(
            clean_flaky.url,
            cloud.url,
            jwks.url,
            _policy("limited", limits={"requestsPerMinute": 2}),
            _policy("broke", cloudFallbacks=True, monthlyBudgetUSD=0),
            policyClaim="groups",
        )
    )
    # two tokens of one policy share its bucket
    first, second = (
        jwks.token("k1", groups=["limited"], sub="a"),
        jwks.token("k1", groups=["limited"], sub="b"),
    )
    assert _post(router, first).status_code == 200
    assert _post(router, second).status_code == 200
    limited = _post(router, first)
    _error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    before = cloud.stats()["requests"]
    downgraded = _post(router, jwks.token("k1", groups=["broke"]), chat("x", model="frontier"))
    assert downgraded.status_code == 200, downgraded.text
    assert downgraded.headers["x-flotilla-budget"] == "exhausted"
    assert downgraded.headers["x-flotilla-model"] == "pod"
    assert cloud.stats()["requests"] == before


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(header: bytes, payload: bytes, secret: bytes) -> str:
    signing = f"{_b64(header)}.{_b64(payload)}"
    return signing + "." + _b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["flotilla_policy"] = "team-b"
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
