"""A minimal REST client for the few calls `up`/`status` make (readyz, nodes, service accounts).

Hand-written on urllib because this package must run before the project's virtualenv exists. TLS is not
verified here: these calls go to 127.0.0.1 and happen before the apiserver's self-signed certificate is
known (it is written at apiserver start); the kubeconfig handed to users does embed and verify it.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


class Unreachable(Exception):
    """The endpoint did not answer (connection refused, reset, timeout)."""


def get_text(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, str]:
    """GET `url`; (status, body). Raises Unreachable when nothing answers."""
    return _call("GET", url, token, None, timeout)


def _call(
    method: str,
    url: str,
    token: str | None,
    body: bytes | None,
    timeout: float,
    content_type: str = "application/json",
) -> tuple[int, str]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_INSECURE) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(str(exc)) from exc


class Client:
    """Bearer-token client for one apiserver."""

    def __init__(self, server: str, token: str) -> None:
        self.server = server.rstrip("/")
        self.token = token

    def readyz(self) -> tuple[bool, str]:
        """(ready, why-not) from /readyz?verbose."""
        try:
            status, body = get_text(f"{self.server}/readyz?verbose", self.token)
        except Unreachable as exc:
            return False, f"unreachable: {exc}"
        if status == 200:
            return True, ""
        failing = [line.strip() for line in body.splitlines() if line.startswith("[-]")]
        return False, "; ".join(failing) or f"HTTP {status}"

    def get(self, path: str) -> dict[str, Any] | None:
        """GET a JSON object; None when it does not exist (404)."""
        status, body = _call("GET", self.server + path, self.token, None, 5.0)
        if status == 404:
            return None
        if status != 200:
            raise Unreachable(f"GET {path}: HTTP {status}: {body[:300]}")
        result: dict[str, Any] = json.loads(body)
        return result

    def send(self, method: str, path: str, obj: dict[str, Any] | None = None, patch: bool = False) -> int:
        """PATCH (merge patch), DELETE or PUT; returns the HTTP status. Raises Unreachable."""
        body = json.dumps(obj).encode() if obj is not None else None
        content = "application/merge-patch+json" if patch else "application/json"
        return _call(method, self.server + path, self.token, body, 10.0, content)[0]

    def create(self, path: str, obj: dict[str, Any]) -> None:
        """POST an object; an existing one (409) is fine."""
        status, body = _call("POST", self.server + path, self.token, json.dumps(obj).encode(), 10.0)
        if status not in (200, 201, 202, 409):
            raise Unreachable(f"POST {path}: HTTP {status}: {body[:300]}")


def http_ok(url: str) -> Callable[[], tuple[bool, str]]:
    """A readiness probe: the URL (http or https, self-signed allowed) answers 200."""

    def probe() -> tuple[bool, str]:
        try:
            status, body = get_text(url)
        except Unreachable as exc:
            return False, f"{url}: {exc}"
        return status == 200, f"{url}: HTTP {status} {body[:200]}"

    return probe
