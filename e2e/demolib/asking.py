"""Ask the router over HTTP (urllib, as any client would): chat completions, plain and streamed."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ROUTE_HEADERS = ("x-flotilla-task", "x-flotilla-model", "x-flotilla-route-reason", "x-flotilla-cost-usd")


@dataclass(frozen=True)
class Answer:
    """One response: status, the router's headers (lower-case), the text, and how long it took."""

    status: int
    headers: dict[str, str]
    text: str
    seconds: float
    body: dict[str, Any] = field(default_factory=dict)  # the JSON body (not for streams)
    events: int = 0  # SSE data events (streams)
    first_byte_seconds: float = 0.0

    @property
    def model(self) -> str:
        return self.headers.get("x-flotilla-model", "")

    @property
    def reason(self) -> str:
        return self.headers.get("x-flotilla-route-reason", "")

    @property
    def task(self) -> str:
        return self.headers.get("x-flotilla-task", "")


def _request(base_url: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> urllib.request.Request:
    return urllib.request.Request(
        f"{base_url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
    )


def _body(prompt: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    messages = [{"role": "user", "content": prompt}]
    return {"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": stream}


def chat(
    base_url: str, prompt: str, max_tokens: int = 48, headers: Mapping[str, str] | None = None,
    timeout: float = 300, model: str | None = None,
) -> Answer:  # fmt: skip
    """POST one chat completion (``model``: the body's, naming a fleet model; default none: the router
    classifies); an HTTP error is an Answer too (status and the OpenAI error JSON)."""
    start = time.perf_counter()
    request_body = _body(prompt, max_tokens, False) | ({"model": model} if model else {})
    try:
        with urllib.request.urlopen(_request(base_url, request_body, headers or {}),
                                    timeout=timeout) as response:  # fmt: skip
            status, raw, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), exc.headers
    seconds = time.perf_counter() - start
    body: dict[str, Any] = json.loads(raw or b"{}")
    choices = body.get("choices") or [{}]
    text = str((choices[0].get("message") or {}).get("content") or "")
    return Answer(status, {k.lower(): v for k, v in got.items()}, text, seconds, body=body)


def chat_stream(
    base_url: str, prompt: str, max_tokens: int = 48, headers: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> Answer:  # fmt: skip
    """POST a streamed chat completion and read the SSE to `[DONE]`; the text is the joined deltas."""
    start = time.perf_counter()
    parts: list[str] = []
    events, first = 0, 0.0
    request = _request(base_url, _body(prompt, max_tokens, True), headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        got = {k.lower(): v for k, v in response.headers.items()}
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            first = first or time.perf_counter() - start
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                break
            events += 1
            for choice in json.loads(data).get("choices", []):
                parts.append(str((choice.get("delta") or {}).get("content") or ""))
        status = response.status
    seconds = time.perf_counter() - start
    return Answer(status, got, "".join(parts), seconds, events=events, first_byte_seconds=first)
