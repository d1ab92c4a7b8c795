"""Router CPU time per plain request for two source trees, alternated: does a change cost the hot path?

    .venv/bin/python bench/plain_path_cpu.py BEFORE/operator AFTER/operator [--requests 2000] [--rounds 5]

Starts one stand-in provider playing a pod and, per round and tree, a ``flotilla router`` (``PYTHONPATH`` =
the tree) with one task and no escalation or test-time compute; sends 200 warm-up requests, then
``--requests`` sequential non-streamed chats over one keep-alive connection, and reads the router process's
user + system CPU time from ``/proc`` before and after. CPU per request is what bounds a CPU-bound
router's throughput, and it is far less disturbed by other load on the machine than wall-clock rates.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(argv: list[str], tree: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": tree}
    return subprocess.Popen(
        argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("trees", nargs=2, help="two operator/ directories (before, after)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    pod_port = _port()
    standin = _start([python, "-m", "flotilla.standin", "--port", str(pod_port)], args.trees[0])
    body = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}
    results: dict[str, list[float]] = {tree: [] for tree in args.trees}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "router.yaml"
        pod = {"name": "pod", "servedModelName": "pod-model", "endpoints": [f"http://127.0.0.1:{pod_port}"]}
        tasks = [{"name": "chat", "models": ["pod"], "fallbacks": []}]
        config.write_text(yaml.safe_dump({"defaultTask": "chat", "tasks": tasks, "models": [pod]}))
        try:
            _wait(f"http://127.0.0.1:{pod_port}/healthz")
            for _ in range(args.rounds):
                for tree in args.trees:
                    port = _port()
                    argv = [
                        python,
                        "-m",
                        "flotilla.cli",
                        "router",
                        "--config",
                        str(config),
                        "--port",
                        str(port),
                    ]
                    router = _start(argv, tree)
                    try:
                        _wait(f"http://127.0.0.1:{port}/readyz")
                        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                            for _ in range(200):
                                client.post("/v1/chat/completions", json=body)
                            before = _cpu_seconds(router.pid)
                            for _ in range(args.requests):
                                client.post("/v1/chat/completions", json=body).raise_for_status()
                            after = _cpu_seconds(router.pid)
                        results[tree].append(1e6 * (after - before) / args.requests)
                    finally:
                        _stop(router)
        finally:
            _stop(standin)
    for tree, values in results.items():
        ordered = sorted(values)
        each = ", ".join(f"{v:.0f}" for v in ordered)
        print(f"{tree}: median {ordered[len(ordered) // 2]:.0f} µs CPU per request ({each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
