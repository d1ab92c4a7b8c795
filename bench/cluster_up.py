#!/usr/bin/env python3
"""Benchmark of the local cluster: warm `e2e/cluster up` time to all nodes Ready, and control-plane memory.

How it measures: each run starts a fresh cluster with `e2e/cluster up` in a private state dir (binaries
already built, so "warm"; etcd starts empty every time), timing the command's wall clock from launch to
exit. `up` exits only after etcd /health, apiserver /readyz, controller-manager and scheduler /healthz,
both kwok nodes Ready without not-ready taints, and the default ServiceAccount. It then waits
`--settle` seconds and sums VmRSS (/proc/PID/status) of the five processes `up` recorded, then runs
`down`. Prints a table. Usage: bench/cluster_up.py [--runs 5] [--settle 10].
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

from clusterlib import processes, sessions, states  # stdlib-only, lives in e2e/


def one_run(settle: float) -> tuple[float, dict[str, int]]:
    """(seconds `up` took, resident bytes per component after `settle` seconds)."""
    state_dir = Path(tempfile.mkdtemp(prefix="flotilla-bench-"))
    try:
        started = time.monotonic()
        done = sessions.run(["up", "--no-build"], state_dir)
        took = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"e2e/cluster up failed:\n{done.stdout}{done.stderr}")
        time.sleep(settle)
        record = json.loads((state_dir / states.STATE_FILE).read_text())
        procs = [processes.Proc.from_json(p) for p in record["procs"]]
        return took, {p.name: processes.rss_bytes(p) for p in procs}
    finally:
        sessions.run(["down"], state_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after up before reading RSS")
    args = parser.parse_args()
    times: list[float] = []
    memory: list[dict[str, int]] = []
    for i in range(args.runs):
        took, rss = one_run(args.settle)
        times.append(took)
        memory.append(rss)
        print(f"run {i + 1}: up {took:.1f} s, resident {sum(rss.values()) / 2**20:.0f} MiB", flush=True)
    print()
    print("| measure | value |")
    print("| --- | --- |")
    median = statistics.median(times)
    print(f"| warm `e2e/cluster up` to nodes Ready, median of {args.runs} | {median:.1f} s |")
    print(f"| ... min / max | {min(times):.1f} s / {max(times):.1f} s |")
    last = memory[-1]
    for name, resident in last.items():
        print(f"| RSS {name} ({args.settle:.0f} s after up, last run) | {resident / 2**20:.0f} MiB |")
    print(f"| RSS control plane total | {sum(last.values()) / 2**20:.0f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
