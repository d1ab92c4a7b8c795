"""The load generator: ``wrk`` (C, epoll, keep-alive, closed loop) driven by ``post.lua``.

wrk keeps exactly ``-c`` connections busy, each sending its next request as soon as the previous response has
been read completely, and records each request's latency from send to the end of the response (for SSE that
is the last byte, ``data: [DONE]`` included). ``post.lua`` prints wrk's percentiles as one JSON line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from procs import pinned

LUA = Path(__file__).with_name("post.lua")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    errors: int
    non_2xx: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk not found: install it with `apt-get update && apt-get install -y wrk`")
    return path


API_KEY = "flotilla-bench-key"
"""Sent as ``Authorization: Bearer`` by every request (wrk and the checks); ``flotilla-keyed`` requires it."""
AUTHORIZATION = {"authorization": f"Bearer {API_KEY}"}


def run_wrk(url: str, body_file: Path, connections: int, seconds: int, cpus: str | None) -> WrkResult:
    """One closed-loop run of ``seconds`` with ``connections`` connections on one wrk thread.

    One thread is enough: wrk is pinned to one core anyway, and one epoll thread there outruns every server
    measured here (``run.py`` shows its ceiling against the fake backend directly).
    """
    cmd = [
        require_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(seconds, 1)}s",  # wrk takes whole seconds only
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    done = subprocess.run(
        pinned(cmd, cpus),
        capture_output=True,
        text=True,
        env={"BENCH_BODY_FILE": str(body_file), "BENCH_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"},
        timeout=seconds + 30,
        check=False,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stderr.strip()[:500]}")
    data = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_us=data["p50_us"],
        p90_us=data["p90_us"],
        p99_us=data["p99_us"],
        max_us=data["max_us"],
        errors=data["err_connect"] + data["err_read"] + data["err_write"] + data["err_timeout"],
        non_2xx=data["err_status"],
    )
