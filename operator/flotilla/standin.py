"""A local stand-in for a cloud LLM provider (OpenAI and Anthropic shapes) with failure injection.

Run: ``python -m flotilla.standin --port 9100 [--host 127.0.0.1] [--api-key KEY]``. Every answer says it is
a stand-in (content starts with ``[flotilla stand-in provider]``); token counts are whitespace words, so tests
can compute expected usage and cost.

Faults, per request (a directive anywhere in the last user message, or the same as ``x-standin-*`` headers)::

    [standin status=503 delay=1.5 drop_after=2 garbage=1 chunk_delay=0.2 chunks=20 prompt_tokens=-5]
    [standin drop_random=1 error_after=3]

``drop_after=N`` cuts a stream (or a plain body) after N events; ``drop_random=1`` cuts a stream after a
random number of its content events (at least one, never all); ``error_after=N`` sends an error event after
N events and ends the stream.

or for the next requests via the admin API: ``POST /admin/faults {"status": 503, "count": 3}`` (``count``
omitted: until ``DELETE /admin/faults``). ``prompt_tokens`` overrides the reported prompt token count (a
negative one plays a broken upstream). ``GET /admin/stats`` counts requests and the streams or delayed
answers the client closed early (``disconnects``) — how tests prove a router cancelled the upstream request.
A plain OpenAI request with ``n`` gets ``n`` (identical) choices, priced as ``n`` answers.

``--answers FILE`` (JSONL with ``prompt``, ``answer`` and optionally ``solution``, e.g.
``../shared/data/math-answers.jsonl``) plays a frontier model that knows the key: a request whose last user
message contains one of the prompts is answered with ``#### <answer>`` and that row's solution (after the
banner, cut at ``max_tokens`` words like every answer). ``--teacher`` (with ``--answers``) drops the banner
from those answers: the stand-in then plays the cloud teacher of a distillation loop, whose known answers are
the training data (``#### <answer>`` first: a distinctive, learnable format a student's agreement is measured
by); prompts it does not know still get the bannered echo, so they never pass for a teacher's answer.

A chat or Anthropic request whose last message is the assistant's is a prefill: the stand-in continues it.
When the prefill is the start of the answer it would give, only the rest is sent (so a stream cut and
continued elsewhere reads exactly as one uninterrupted answer); any other prefill gets the whole answer
after it. ``GET /admin/stats`` shows the last prefill (``last_prefill``) and the cut points (``cuts``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

BANNER = "[flotilla stand-in provider]"
_DIRECTIVE = re.compile(r"\[standin ([^\]]*)\]")
_FAULT_KEYS = {
    "status": int,
    "delay": float,
    "drop_after": int,
    "garbage": int,
    "chunk_delay": float,
    "chunks": int,
    "prompt_tokens": int,
    "drop_random": int,
    "error_after": int,
}


class JSONResponse(_StarletteJSON):
    """Starlette's JSON response with ASCII escapes: an echoed lone surrogate (valid in JSON, not encodable
    as UTF-8) must not turn the stand-in's answer into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


@dataclass
class Stats:
    requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    streams_started: int = 0
    streams_completed: int = 0
    disconnects: int = 0
    active_streams: int = 0
    faults: dict[str, Any] = field(default_factory=dict)
    fault_count: int | None = None
    last_prefill: str | None = None
    cuts: list[int] = field(default_factory=list)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content or "")


def _faults(stats: Stats, request: Request, prompt: str) -> dict[str, Any]:
    """Admin faults first (consuming one of ``count``), then header and prompt directives on top."""
    faults: dict[str, Any] = {}
    if stats.faults and stats.fault_count != 0:
        faults.update(stats.faults)
        if stats.fault_count is not None:
            stats.fault_count -= 1
    for key, cast in _FAULT_KEYS.items():
        if (value := request.headers.get(f"x-standin-{key.replace('_', '-')}")) is not None:
            faults[key] = cast(value)
    for match in _DIRECTIVE.finditer(prompt):
        for pair in match.group(1).split():
            key, _, value = pair.partition("=")
            if key in _FAULT_KEYS:
                faults[key] = _FAULT_KEYS[key](value)
    return faults


async def _wait_unless_gone(request: Request, seconds: float) -> bool:
    """Sleep ``seconds`` (a slow model); False as soon as the client has closed the connection."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.05))
        if await request.is_disconnected():
            return False
    return True


MAX_CHOICES = 128
"""The most choices one request may ask for (OpenAI's limit)."""


def _reply_words(prompt: str, max_tokens: int, chunks: int | None) -> list[str]:
    words = [BANNER, "echo:", *prompt.split()[:12]]
    if chunks:
        words = (words * (chunks // len(words) + 1))[:chunks]
    return words[: max(1, max_tokens)]


class AnswerKey:
    """Known answers by prompt: exact match on whitespace-normalised text, else the longest contained one."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._by_prompt: dict[str, str] = {}
        for row in rows:
            solution = re.sub(r"<<[^>]*>>", "", str(row.get("solution", "")))  # GSM8K calculator marks
            text = f"#### {row['answer']}\n{solution}"  # the answer first: a short max_tokens keeps it
            self._by_prompt[" ".join(str(row["prompt"]).split())] = text
        self._longest_first = sorted(self._by_prompt, key=len, reverse=True)

    @classmethod
    def load(cls, path: str) -> AnswerKey:
        with open(path, encoding="utf-8") as lines:
            return cls([json.loads(line) for line in lines if line.strip()])

    def lookup(self, prompt: str) -> str | None:
        text = " ".join(prompt.split())
        found = self._by_prompt.get(text)
        if found is not None:
            return found
        return next((self._by_prompt[p] for p in self._longest_first if p in text), None)


def _continue(prefill: str, words: list[str]) -> list[str]:
    """The pieces that continue ``prefill``: the rest of the answer when it is the answer's start, else the
    whole answer after a space. Pieces keep their leading whitespace (``_events`` joins them as they are)."""
    answer = " ".join(words)
    stripped = prefill.rstrip()
    if answer.startswith(stripped):
        rest = answer[len(stripped) :]
    else:
        rest = (" " if stripped == prefill else "") + answer
    pieces = re.findall(r"\s*\S+", rest)
    return ["\0" + p for p in pieces] or ["\0"]


def _error(status: int, anthropic: bool) -> Response:
    message = f"{BANNER} injected error {status}"
    if anthropic:
        return JSONResponse({"type": "error", "error": {"type": "api_error", "message": message}}, status)
    return JSONResponse(
        {"error": {"message": message, "type": "api_error", "param": None, "code": None}}, status
    )


def build_app(api_key: str | None = None, key: AnswerKey | None = None, teacher: bool = False) -> Starlette:
    stats = Stats()

    async def handle(request: Request) -> Response:
        path = request.url.path
        anthropic = path.endswith("/messages")
        stats.requests += 1
        stats.by_path[path] = stats.by_path.get(path, 0) + 1
        if api_key is not None:
            given = (
                request.headers.get("x-api-key") if anthropic else request.headers.get("authorization", "")
            )
            if given not in (api_key, f"Bearer {api_key}"):
                return _error(401, anthropic)
        try:
            body = await request.json()
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return JSONResponse({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}, 400)
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES:
            # as OpenAI does: a fuzzed n of 2**31 must not make the stand-in build 2**31 choices
            message = f"n must be an integer from 1 to {MAX_CHOICES}"
            error = {
                "message": message,
                "type": "invalid_request_error",
                "param": "n",
                "code": "invalid_value",
            }
            return JSONResponse({"error": error}, 400)
        if "prompt" in body:
            messages = [{"role": "user", "content": _text(body["prompt"])}]
        else:
            messages = body.get("messages") or []
        users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
        prompt = _text(users[-1].get("content")) if users else ""
        faults = _faults(stats, request, prompt)
        if faults.get("delay") and not await _wait_unless_gone(request, faults["delay"]):
            stats.disconnects += 1  # the client (a router) gave up: as a model server, stop generating
            return Response(status_code=499)
        if faults.get("status"):
            return _error(faults["status"], anthropic)
        if faults.get("garbage"):
            return Response(b"<html>502 gateway hiccup \x00\xff not json", 200, media_type="application/json")
        everything = " ".join(_text(m.get("content")) for m in messages if isinstance(m, Mapping))
        if anthropic:
            everything += " " + _text(body.get("system"))
        prompt_tokens = faults.get("prompt_tokens", len(everything.split()))
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 64)
        known = key.lookup(prompt) if key is not None else None
        if known is not None:
            words = [*([] if teacher else [BANNER]), *known.split()][: max(1, max_tokens)]
        else:
            words = _reply_words(prompt, max_tokens, faults.get("chunks"))
        last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
        prefill = _text(last.get("content")) if last.get("role") == "assistant" else ""
        if prefill:
            stats.last_prefill = prefill
            words = _continue(prefill, words)
        model = str(body.get("model", "standin"))
        kind = "anthropic" if anthropic else ("chat" if path.endswith("/chat/completions") else "completions")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _stream(stats, kind, model, words, prompt_tokens, faults, include_usage),
                media_type="text/event-stream",
            )
        choices = n if not anthropic else 1
        whole = _whole(kind, model, words, prompt_tokens, len(words) < max_tokens, choices)
        if faults.get("drop_after") is not None:  # a plain answer cut off: half the promised body, then close
            body = json.dumps(whole).encode()
            return StreamingResponse(
                _cut(body), media_type="application/json", headers={"content-length": str(len(body))}
            )
        return JSONResponse(whole)

    async def set_faults(request: Request) -> Response:
        body = await request.json()
        count = body.pop("count", None)
        stats.faults = {k: _FAULT_KEYS[k](v) for k, v in body.items() if k in _FAULT_KEYS}
        stats.fault_count = None if count is None else int(count)
        return JSONResponse({"faults": stats.faults, "count": stats.fault_count})

    async def clear_faults(request: Request) -> Response:
        stats.faults, stats.fault_count = {}, None
        return JSONResponse({"faults": {}})

    async def get_stats(request: Request) -> Response:
        return JSONResponse({k: v for k, v in stats.__dict__.items()})

    async def models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": "standin", "object": "model", "owned_by": BANNER}]}
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "standin": True})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", handle, methods=["POST"]),
            Route("/v1/completions", handle, methods=["POST"]),
            Route("/v1/messages", handle, methods=["POST"]),
            Route("/v1/models", models),
            Route("/healthz", health),
            Route("/admin/faults", set_faults, methods=["POST"]),
            Route("/admin/faults", clear_faults, methods=["DELETE"]),
            Route("/admin/stats", get_stats),
        ]
    )


def _pieces(words: list[str]) -> list[str]:
    """The streamed pieces of ``words``: a space before each but the first, unless a piece (a continuation's,
    marked by a leading NUL) carries its own whitespace."""
    return [w[1:] if w.startswith("\0") else w if i == 0 else " " + w for i, w in enumerate(words)]


def _whole(
    kind: str, model: str, words: list[str], prompt_tokens: int, stopped: bool, choices: int = 1
) -> dict[str, Any]:
    """The whole answer; ``choices`` (OpenAI's ``n``) copies of it, each a numbered choice."""
    text, n = "".join(_pieces(words)), len(words)
    if kind == "anthropic":
        return {
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn" if stopped else "max_tokens",
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": n},
        }
    finish = "stop" if stopped else "length"
    choice = (
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        if kind == "chat"
        else {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    )
    completion = n * choices
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{**choice, "index": i} for i in range(choices)],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        },
    }


async def _cut(body: bytes) -> AsyncIterator[bytes]:
    yield body[: len(body) // 2]
    raise ConnectionAbortedError("injected drop")  # uvicorn closes the socket mid-body


def _sse(data: Mapping[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _events(kind: str, model: str, words: list[str], prompt_tokens: int, include_usage: bool) -> list[bytes]:
    """The whole stream, one element per write; the finishing events come last."""
    n = len(words)
    pieces = _pieces(words)
    if kind == "anthropic":
        mid = f"msg_{uuid.uuid4().hex}"
        start = {
            "type": "message_start",
            "message": {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "usage": {"input_tokens": prompt_tokens, "output_tokens": 0},
            },
        }
        out = [
            _sse(start, "message_start"),
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
        ]
        out += [
            _sse(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
                "content_block_delta",
            )
            for p in pieces
        ]
        return [
            *out,
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": n},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
    cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    chat = kind == "chat"
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(piece: str | None, finish: str | None) -> bytes:
        choice: dict[str, Any] = (
            {"index": 0, "delta": {} if piece is None else {"content": piece}, "finish_reason": finish}
            if chat
            else {"index": 0, "text": piece or "", "finish_reason": finish}
        )
        return _sse({"id": cid, "object": obj, "created": created, "model": model, "choices": [choice]})

    out = [chunk(p, None) for p in pieces] + [chunk(None, "stop")]
    if include_usage:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
        out.append(
            _sse(
                {"id": cid, "object": obj, "created": created, "model": model, "choices": [], "usage": usage}
            )
        )
    return [*out, b"data: [DONE]\n\n"]


async def _stream(
    stats: Stats,
    kind: str,
    model: str,
    words: list[str],
    prompt_tokens: int,
    faults: Mapping[str, Any],
    include_usage: bool,
) -> AsyncIterator[bytes]:
    stats.streams_started += 1
    stats.active_streams += 1
    finished = False
    events = _events(kind, model, words, prompt_tokens, include_usage)
    drop_after = faults.get("drop_after")
    if faults.get("drop_random"):
        first = 2 if kind == "anthropic" else 0  # after message_start and content_block_start
        drop_after = random.randint(first + 1, first + max(1, len(words) - 1))
        stats.cuts.append(drop_after - first)
    try:
        for i, event in enumerate(events):
            if drop_after is not None and i >= drop_after:
                raise ConnectionAbortedError("injected drop")  # uvicorn closes the socket mid-body
            if faults.get("error_after") is not None and i >= faults["error_after"]:
                error = {"message": f"{BANNER} injected stream error", "type": "api_error"}
                yield _sse({"type": "error", "error": error} if kind == "anthropic" else {"error": error})
                break
            if i and faults.get("chunk_delay"):
                await asyncio.sleep(faults["chunk_delay"])
            yield event
        else:
            stats.streams_completed += 1
        finished = True
    finally:
        stats.active_streams -= 1
        if not finished and drop_after is None and faults.get("error_after") is None:
            stats.disconnects += 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flotilla.standin", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--api-key", default=None, help="require this key (Bearer or x-api-key)")
    parser.add_argument("--answers", default=None, help="JSONL of prompt/answer(/solution): answer from it")
    parser.add_argument(
        "--teacher", action="store_true", help="known answers without the banner (a distillation teacher)"
    )
    args = parser.parse_args(argv)
    if args.teacher and not args.answers:
        parser.error("--teacher needs --answers")
    key = AnswerKey.load(args.answers) if args.answers else None
    uvicorn.run(
        build_app(args.api_key, key, args.teacher),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
