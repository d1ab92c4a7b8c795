"""OpenAI-shaped error bodies and the exception that carries one to the edge of the app.

Every error a client sees is ``{"error": {"message", "type", "param", "code"}}`` with the status OpenAI would
use, so SDKs raise their usual exception classes (``BadRequestError``, ``NotFoundError``, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flotilla.router.recording import Draft
    from flotilla.router.shadowing import Mirror

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}

# A fallback reason that ends the chain (not in ``fallbackOn``, or nothing left) → status and code.
REASON_STATUS: dict[str, tuple[int, str]] = {
    "unavailable": (503, "model_unavailable"),
    "cold": (503, "model_cold"),
    "overload": (429, "model_overloaded"),
    "error": (502, "upstream_error"),
    "timeout": (504, "upstream_timeout"),
}


@dataclass(slots=True)
class Plain:
    """A whole (non-streamed) response: status, body bytes, extra headers and the content type."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    capture: Draft | None = None
    """Set on a request sampled for distillation (``router.recording``)."""
    shadow: Mirror | None = None
    """Set on a request mirrored to its task's candidate model (``router.shadowing``)."""


class RequestError(Exception):
    """A request that gets an error response; raised anywhere below the app, rendered once in ``app``."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}
        """Extra response headers (``Retry-After``, ``WWW-Authenticate``)."""

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.code, self.param)


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> bytes:
    """The JSON bytes of an OpenAI error object."""
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}}).encode()
