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
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "router"))  # the router bench's process helpers
import procs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("trees", nargs=2, help="two operator/ directories (before, after)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    pod_port = procs.free_port()
    logs = Path(tempfile.mkdtemp(prefix="plain-path-cpu-"))  # the processes' output, kept for a failed run
    standin_argv = [python, "-m", "flotilla.standin", "--port", str(pod_port)]
    standin = procs.start("standin", standin_argv, logs, env={"PYTHONPATH": args.trees[0]})
    body = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}
    results: dict[str, list[float]] = {tree: [] for tree in args.trees}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "router.yaml"
        pod = {"name": "pod", "servedModelName": "pod-model", "endpoints": [f"http://127.0.0.1:{pod_port}"]}
        tasks = [{"name": "chat", "models": ["pod"], "fallbacks": []}]
        config.write_text(yaml.safe_dump({"defaultTask": "chat", "tasks": tasks, "models": [pod]}))
        try:
            procs.wait_http(standin, f"http://127.0.0.1:{pod_port}/healthz", 60)
            for _ in range(args.rounds):
                for tree in args.trees:
                    port = procs.free_port()
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
                    router = procs.start("router", argv, logs, env={"PYTHONPATH": tree})
                    try:
                        procs.wait_http(router, f"http://127.0.0.1:{port}/readyz", 60)
                        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                            for _ in range(200):
                                client.post("/v1/chat/completions", json=body)
                            before = procs.cpu_seconds([router.pid])
                            for _ in range(args.requests):
                                client.post("/v1/chat/completions", json=body).raise_for_status()
                            after = procs.cpu_seconds([router.pid])
                        results[tree].append(1e6 * (after - before) / args.requests)
                    finally:
                        router.stop()
        finally:
            standin.stop()
    for tree, values in results.items():
        ordered = sorted(values)
        each = ", ".join(f"{v:.0f}" for v in ordered)
        print(f"{tree}: median {ordered[len(ordered) // 2]:.0f} µs CPU per request ({each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
