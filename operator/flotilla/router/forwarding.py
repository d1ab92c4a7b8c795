"""Send one request to one upstream endpoint and classify how it failed, if it did.

A ``Target`` is a fleet model or a cloud provider, already resolved from the config. ``open_response``
returns an upstream response whose headers and first body bytes have arrived (so a timeout, connect error,
5xx or garbage can still fall back), or raises ``UpstreamError`` carrying the fallback reason.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from flotilla.api.routerconfig import Price
from flotilla.errors import UpstreamError
from flotilla.router import anthropic, httpclient, streams
from flotilla.router.requesting import ParsedRequest
from flotilla.router.upstreams import Endpoint, Pool

Protocol = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class Target:
    """Everything needed to send to one model or provider (built once per config load)."""

    name: str
    pool: Pool
    protocol: Protocol
    upstream_model: str
    price: Price
    first_byte_timeout: float
    total_timeout: float
    max_in_flight: int | None
    scale_from_zero: bool
    is_cloud: bool
    api_key: str | None = None
    relays_errors: bool = True
    """Pass a 4xx body to the client as it came. False for openai-compatible providers: their host is the
    fleet author's choice (maybe an in-cluster service), so its bodies could leak what the router can
    reach; the client gets an OpenAI error naming the provider and the status instead."""
    base_path: str = "/v1"  # fleet pods are listed as base URLs; providers' baseURL already ends in /v1
    multiple_choices: bool = False
    """The server answers ``n`` > 1 in one request (test-time compute asks once instead of n times)."""
    continues: bool = True
    """Continues a partial answer given as a final assistant message (a prefill), so a stream that broke
    elsewhere can resume here. False for OpenAI's own API, which would start a new answer instead."""


@dataclass(slots=True)
class Opened:
    """An upstream response ready to relay: status, content type and the first body bytes already read."""

    response: aiohttp.ClientResponse | httpclient.Response
    first: bytes


def build_request(
    target: Target, parsed: ParsedRequest, endpoint: Endpoint
) -> tuple[str, bytes, dict[str, str]]:
    """URL, body and headers for ``parsed`` sent to ``endpoint`` of ``target``."""
    headers = {"content-type": "application/json"}
    if target.protocol == "anthropic":
        url = anthropic.messages_url(endpoint.url)
        body: dict[str, Any] = anthropic.to_request(parsed.payload, parsed.messages, target.upstream_model)
        headers["anthropic-version"] = anthropic.API_VERSION
        if target.api_key:
            headers["x-api-key"] = target.api_key
        return url, json.dumps(body).encode(), headers
    path = "/chat/completions" if parsed.kind == "chat" else "/completions"
    url = endpoint.url + target.base_path + path
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    return url, _openai_body(target, parsed), headers


def _openai_body(target: Target, parsed: ParsedRequest) -> bytes:
    """The client's bytes when they already name the served model (and ask a stream for usage), else JSON."""
    payload = parsed.payload
    options = payload.get("stream_options") or {}
    wants_usage = options.get("include_usage") is True
    if parsed.raw and payload.get("model") == target.upstream_model and (not parsed.stream or wants_usage):
        return parsed.raw
    body = dict(payload)
    body["model"] = target.upstream_model
    if parsed.stream:  # ask for usage so every stream can be priced
        body["stream_options"] = {**options, "include_usage": True}
    return json.dumps(body).encode()


async def open_response(
    session: aiohttp.ClientSession,
    client: httpclient.Client,
    target: Target,
    parsed: ParsedRequest,
    endpoint: Endpoint,
) -> Opened:
    """Send and wait for the headers (and, for a stream, its first event) within the first-byte timeout.

    Raises ``UpstreamError`` with reason ``error`` (connect error, 5xx, 401/403, garbage), ``timeout`` or
    ``overload`` (429). Other 4xx are returned: they are the client's fault and pass through.
    """
    url, body, headers = build_request(target, parsed, endpoint)
    response: aiohttp.ClientResponse | httpclient.Response | None = None
    streaming = parsed.stream
    try:
        async with asyncio.timeout(target.first_byte_timeout):
            if url.startswith("http://"):  # fleet pods: the lean client; TLS providers: aiohttp
                response = await client.post(url, body, headers, target.total_timeout)
            else:
                response = await session.post(
                    url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=target.total_timeout)
                )
            if streaming and response.status == 200:
                first = await _first_event(response)
        if not (streaming and response.status == 200):
            # A plain answer's headers come when generation is done; its body then gets the total timeout.
            first = await response.read()
    except TimeoutError:
        _close(response)
        limit = "first-byte" if response is None or streaming else "total"
        seconds = target.first_byte_timeout if limit == "first-byte" else target.total_timeout
        raise UpstreamError(
            "timeout", f"{target.name} exceeded its {limit} timeout ({seconds:g}s)", 504
        ) from None
    except aiohttp.ClientError as exc:
        _close(response)
        raise UpstreamError("error", f"{target.name} could not be reached: {type(exc).__name__}") from None
    except BaseException:  # cancelled (the client left): the upstream must see the request abandoned
        _close(response)
        raise
    status = response.status
    if status >= 500 or status in (401, 403) or status == 429:
        _close(response)
        reason = "overload" if status == 429 else "error"
        raise UpstreamError(reason, f"{target.name} answered HTTP {status}", 502)
    if status == 200 and streaming and not streams.looks_like_sse(first):
        _close(response)
        raise UpstreamError("error", f"{target.name} sent a malformed event stream", 502)
    return Opened(response, first)


async def _first_event(response: aiohttp.ClientResponse | httpclient.Response) -> bytes:
    """The first non-blank chunk of a 200 stream (keep-alive blank lines are not content)."""
    chunk = await response.content.readany()
    while chunk and not chunk.strip():
        more = await response.content.readany()
        if not more:
            break
        chunk += more
    return chunk


def _close(response: aiohttp.ClientResponse | httpclient.Response | None) -> None:
    """Drop the connection (not back to the pool): the upstream sees the request abandoned."""
    if response is not None:
        response.close()
