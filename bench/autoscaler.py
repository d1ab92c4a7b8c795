#!/usr/bin/env python3
"""Replica tracking under a stepped load: how closely the built-in autoscaler's arithmetic follows demand.

How it measures: the real `flotilla.autoscaler.recommending.Recommender` is driven tick by tick (default
every 5 s, as the operator does) with a stepped in-flight load; the Deployment is assumed to follow each
decision at once (pod start-up is not part of the arithmetic). For each step it reports the load-derived
target (ceil(load / targetInFlight) bounded by min/max), the seconds until replicas reached it, the
replicas' mean absolute error over the step and the scale events. No cluster, no clock: simulated time.
The end-to-end tracking on a cluster (scrape + patch + kwok pods) is exercised by
tests/integration/autoscaler.

    .venv/bin/python bench/autoscaler.py [--tick 5] [--window 30] [--down-delay 120] [--target 8]
"""

from __future__ import annotations

import argparse
import math

from flotilla.autoscaler.recommending import Policy, Recommender

STEPS = [(0.0, 60), (3.0, 120), (20.0, 120), (60.0, 180), (28.0, 240), (0.0, 300)]
"""(in-flight load, seconds held)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tick", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--down-delay", type=float, default=120.0)
    parser.add_argument("--target", type=float, default=8.0)
    parser.add_argument("--max", type=int, default=6)
    args = parser.parse_args()
    policy = Policy(0, args.max, args.target, window=args.window, down_delay=args.down_delay)
    recommender, replicas, now = Recommender(policy), 0, 0.0
    print(f"tick {args.tick:g}s, window {args.window:g}s, scale-down delay {args.down_delay:g}s, "
          f"target {args.target:g} in flight per replica, replicas 0..{args.max}")  # fmt: skip
    header = ("load", "for s", "target", "reached after s", "mean |error|", "events")
    print("{:>6} {:>6} {:>6} {:>16} {:>13} {:>7}".format(*header))
    total_events = 0
    for load, seconds in STEPS:
        target = max(0, min(args.max, math.ceil(load / args.target)))
        reached: float | None = 0.0 if replicas == target else None
        errors, events, start = [], 0, now
        while now < start + seconds:
            now += args.tick
            recommender.observe(now, load)
            decision = recommender.decide(now, replicas)
            events += decision.changed
            replicas = decision.desired
            errors.append(abs(replicas - target))
            if reached is None and replicas == target:
                reached = now - start
        total_events += events
        shown = f"{reached:.0f}" if reached is not None else "not reached"
        print(f"{load:6g} {seconds:6d} {target:6d} {shown:>16} {sum(errors) / len(errors):13.2f} {events:7d}")
    print(f"scale events in total: {total_events}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
