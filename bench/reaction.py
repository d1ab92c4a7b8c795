#!/usr/bin/env python3
"""Reaction time of each autoscaling mode to the same load step, side by side, on the local cluster.

Needs a running local cluster (``e2e/cluster up``; KUBECONFIG and PATH from ``eval "$(e2e/cluster env)"``),
``e2e/cluster build --only prometheus --only keda --only keda-crds --only prometheus-adapter`` and
``scripts/llama-server``. It installs the CRDs (Flotilla's, KEDA's own), the operator's RBAC, and starts in a
fresh namespace everything tests/integration/reactionkit.py describes: one fleet with a model per mode
(``builtin``, ``hpa``, ``keda``: llama.cpp Gemma 3 270M on kwok pods, replicas 1..3, targetInFlight 1, the
same window and scaleDownDelay), the real operator (built-in autoscaler), a real router in front of one
real llama-server, a real Prometheus, KEDA's operator and metrics apiserver, prometheus-adapter with the
documented rule, both behind the aggregation layer, and the real kube-controller-manager's HPA controller
(its default 15 s sync). The namespace is deleted at the end.

How it measures: per mode in turn, with the other models idle at 1, ``--clients`` (3) clients stream long
generations through the router (llama-server runs 3 slots, so 3 are in flight: the router's gauge and
llama-server's requests_processing both read 3, a load that wants 3 replicas in every mode). From the
moment the clients start, the model's Deployment is read every 0.5 s: seconds until spec.replicas first
rose above 1, and until it was 3; then the clients close their streams and the seconds until it was back
at 1. kwok pods run no process, so these are control-loop times (metric path, controller sync, scale
write), without a model's start-up; each is accurate to a read (0.5 s plus an API call). Before each step
the bench idles a random 0..``--jitter`` (15) seconds, so that rounds do not hit the periodic loops (the
HPA controller's 15 s sync, the built-in tick, KEDA's poll) at the same phase every time.

    .venv/bin/python bench/reaction.py [--window 2s] [--down-delay 10s] [--interval 5] [--rounds 1]
        [--jitter 15]
"""

from __future__ import annotations

import os
import sys

# The benchmark drives the cluster with the integration tests' helpers.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[1:1] = [os.path.join(_ROOT, "tests", "integration"), os.path.join(_ROOT, "e2e")]  # e2e: clusterlib

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import operatorkit as ok  # noqa: E402  (test helpers: kubectl, CRDs, the operator's ServiceAccount)
import reactionkit as rk  # noqa: E402  (test helpers: the fleet, its processes, the load step)


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--window", default="2s", help="autoscaling.window of every model")
    parser.add_argument("--down-delay", default="10s", help="autoscaling.scaleDownDelay of every model")
    parser.add_argument("--interval", type=float, default=5.0, help="built-in autoscaler tick (its default)")
    parser.add_argument("--clients", type=int, default=rk.MAX * rk.TARGET)
    parser.add_argument("--rounds", type=int, default=1, help="load steps per mode")
    parser.add_argument(
        "--jitter", type=float, default=15.0, help="idle up to this many seconds (uniform) before each step"
    )
    args = parser.parse_args()

    ok.install_crds()
    workdir = ok.temp_dir("flotilla-bench-reaction-")
    namespace = f"flotilla-bench-{uuid.uuid4().hex[:6]}"
    ok.kubectl("create", "namespace", namespace)
    results: dict[str, list[rk.Reaction]] = {mode: [] for mode in rk.MODES}
    try:
        with ok.keda_crds():
            kubeconfig = os.environ["KUBECONFIG"]
            stack = rk.Stack(
                rk.MODES, namespace, Path(kubeconfig), ok.service_account_kubeconfig(workdir), workdir,
                window=args.window, down_delay=args.down_delay, interval=args.interval,
            )  # fmt: skip
            try:
                for _ in range(args.rounds):
                    for mode in rk.MODES:
                        time.sleep(random.uniform(0, args.jitter))  # no fixed phase to the controllers' loops
                        reaction = stack.step(mode, args.clients)
                        print(f"{mode}: {reaction}", flush=True)
                        results[mode].append(reaction)
            finally:
                stack.close()
    finally:
        ok.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    print(f"\nload step: {args.clients} clients streaming through the router; replicas 1..3, "
          f"targetInFlight 1, window {args.window}, scaleDownDelay {args.down_delay}; "
          f"built-in tick {args.interval:g} s, HPA sync 15 s; {args.rounds} round(s), "
          "seconds (median (min-max) over rounds)")  # fmt: skip
    print("| mode | load start -> first scale-up | load start -> 3 replicas | load stop -> back at 1 |")
    print("|---|---|---|---|")
    for mode, rows in results.items():
        cells = [_cell([getattr(r, f) for r in rows]) for f in ("first_up", "at_max", "back_to_min")]
        print(f"| `{mode}` | {' | '.join(cells)} |")
    print(f"(logs in {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
