"""Before any load: prove each contender really proxies (a wrong URL or an error page would look "fast").

Sends one plain and one streaming chat completion with httpx and checks the fake backend's answer comes back
intact: the JSON message, and for SSE every content delta in order followed by ``data: [DONE]``.
"""

from __future__ import annotations

import json

import httpx
import loadgen
from backend import CONTENT_PIECES

EXPECTED = "".join(CONTENT_PIECES)


def check(base_url: str) -> str | None:
    """``None`` when both shapes round-trip, else a one-line description of what came back instead."""
    url = f"{base_url}/v1/chat/completions"
    body = {"model": "fake", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
    try:
        with httpx.Client(timeout=30, headers=loadgen.AUTHORIZATION) as client:
            response = client.post(url, json=body)
            if response.status_code != 200:
                return f"non-streaming: HTTP {response.status_code}: {response.text[:200]}"
            content = response.json()["choices"][0]["message"]["content"]
            if content != EXPECTED:
                return f"non-streaming: content {content!r}, expected {EXPECTED!r}"
            pieces, done = [], False
            with client.stream("POST", url, json={**body, "stream": True}) as stream:
                if stream.status_code != 200:
                    return f"streaming: HTTP {stream.status_code}: {stream.read()[:200]!r}"
                for line in stream.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        done = True
                        continue
                    for choice in json.loads(data).get("choices", []):
                        pieces.append(choice.get("delta", {}).get("content") or "")
            if "".join(pieces) != EXPECTED or not done:
                return f"streaming: content {''.join(pieces)!r} (done={done}), expected {EXPECTED!r}"
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def route_headers(base_url: str, body: bytes) -> dict[str, str]:
    """The ``x-flotilla-*`` headers Flotilla answers ``body`` with (which task, model and why)."""
    try:
        response = httpx.post(
            f"{base_url}/v1/chat/completions",
            content=body,
            headers={"content-type": "application/json", **loadgen.AUTHORIZATION},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        return {"error": str(exc)}
    return {k: v for k, v in response.headers.items() if k.startswith("x-flotilla-")}
