"""What building one captured trace costs in-process: the record of a json answer, an sse answer and a
200-token prompt, and redacting that prompt (``traces.line`` and ``Redactor.text``, no router around them).

    .venv/bin/python -P bench/capture_trace.py [--cpu 0]
    PYTHONPATH=<other checkout>/operator .venv/bin/python -P bench/capture_trace.py   # an earlier version

How it measures: pinned to one CPU, each case warmed up 500 times, then 5 batches of 4,000 calls; the best
batch's mean is printed (the least disturbed by other work on a shared machine). Run the two versions one
after the other and compare them, not figures from different days. In the router a trace costs more than
this (cold caches between requests): ``bench/router/run.py`` with ``flotilla-capture`` measures that.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "router"))
from run import LONG_PROMPT

from flotilla.capturing import traces
from flotilla.capturing.redacting import Redactor

USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def _event(delta: dict[str, str], finish: str | None, usage: bool = False) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    event: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "fake"}
    event["choices"] = [choice]
    if usage:
        event["usage"] = USAGE
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _raw(content: str, **answer: Any) -> traces.Raw:
    return traces.Raw(
        fleet="bench", task="chat", kind="chat", model="fake", cloud=False, fell_back=False,
        reason="requested", key=None, score=1.0, latency=0.001, wall_time=time.time(),
        stream="chunks" in answer, messages=[{"role": "user", "content": content}], **answer,
    )  # fmt: skip


def _best_mean_us(call: Callable[[], object], calls: int = 20_000, batches: int = 5) -> float:
    for _ in range(500):
        call()
    best = float("inf")
    for _ in range(batches):
        started = time.perf_counter_ns()
        for _ in range(calls // batches):
            call()
        best = min(best, (time.perf_counter_ns() - started) / (calls // batches) / 1000)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    pieces = ("Hello", " from", " the", " fake", " backend.")
    chunks = [_event({"role": "assistant", "content": ""}, None)]
    chunks += [_event({"content": piece}, None) for piece in pieces]
    chunks += [_event({}, "stop", usage=True), b"data: [DONE]\n\n"]
    message = {"role": "assistant", "content": "".join(pieces)}
    body = json.dumps(
        {"id": "c", "object": "chat.completion", "created": 1, "model": "fake", "usage": USAGE,
         "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}]}
    ).encode()  # fmt: skip
    redactor = Redactor([])
    cases = [
        ("json answer, short prompt", lambda: traces.line(_raw("Say hello.", body=body), redactor)),
        ("sse answer, short prompt", lambda: traces.line(_raw("Say hello.", chunks=chunks), redactor)),
        ("json answer, 200-token prompt", lambda: traces.line(_raw(LONG_PROMPT, body=body), redactor)),
        (f"redacting the {len(LONG_PROMPT)}-character prompt", lambda: redactor.text(LONG_PROMPT)),
    ]
    print(f"flotilla from {Path(traces.__file__).parents[2]}; pinned to CPU {args.cpu}")
    print("| case | µs (best batch mean) |\n|---|---:|")
    for name, call in cases:
        print(f"| {name} | {_best_mean_us(call):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
