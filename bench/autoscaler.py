#!/usr/bin/env python3
"""Replica tracking under a stepped load: how closely the built-in autoscaler's arithmetic follows demand.

How it measures: the real `flotilla.autoscaler.recommending.Recommender` is driven tick by tick (default
every 5 s, as the operator does) with a stepped in-flight load; the Deployment is assumed to follow each
decision at once (pod start-up is not part of the arithmetic). For each step it reports the load-derived
target (ceil(load / targetInFlight) bounded by min/max), the seconds until replicas reached it, the
replicas' mean absolute error over the step and the scale events. No cluster, no clock: simulated time.
The same table measured on the local cluster (the operator process, scrape, scale patch, kwok pods):
bench/autoscaler_cluster.py, which shares this file's table.

    .venv/bin/python bench/autoscaler.py [--tick 5] [--window 30] [--down-delay 120] [--target 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math

from flotilla.autoscaler.recommending import Policy, Recommender

STEPS = [(0.0, 60), (3.0, 120), (20.0, 120), (60.0, 180), (28.0, 240), (0.0, 300)]
"""(in-flight load, seconds held)."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One step of the stepped load and how replicas tracked it (also bench/autoscaler_cluster.py's)."""

    load: float
    seconds: float
    target: int
    """ceil(load / targetInFlight) bounded by min/max: the replicas the load asks for."""
    reached: float | None
    """Seconds from the step's start until replicas equalled the target (None: not within the step)."""
    error: float
    """Mean |replicas - target| over the step's samples."""
    events: int
    """Replica changes (scale events) during the step."""
    ready: float | None = None
    """Seconds until the ready replicas equalled the target (cluster only)."""


def target_for(load: float, target_in_flight: float, min_replicas: int, max_replicas: int) -> int:
    """The load-derived replica count the autoscaler should settle on (no dead band, no delays)."""
    return max(min_replicas, min(max_replicas, math.ceil(load / target_in_flight)))


def print_table(rows: list[Row], ready: bool = False) -> None:
    """The per-step table and totals; ``ready`` adds the ready-replicas column (cluster runs)."""

    def secs(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else "not reached"

    head = ["load", "for s", "target", "reached after s", *(["ready after s"] if ready else []),
            "mean |error|", "events"]  # fmt: skip
    widths = [6, 6, 6, 16, *([14] if ready else []), 13, 7]
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for r in rows:
        cells = [f"{r.load:g}", f"{r.seconds:g}", str(r.target), secs(r.reached),
                 *([secs(r.ready)] if ready else []), f"{r.error:.2f}", str(r.events)]  # fmt: skip
        print(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    seconds = sum(r.seconds for r in rows)
    error = sum(r.error * r.seconds for r in rows) / seconds if seconds else 0.0
    targets = [0, *(r.target for r in rows)]  # both runs start parked at 0
    changes = sum(1 for a, b in itertools.pairwise(targets) if a != b)
    print(f"total {seconds:g} s: mean |error| {error:.2f} replicas, {sum(r.events for r in rows)} scale "
          f"events for {changes} target changes")  # fmt: skip


def simulate(args: argparse.Namespace) -> list[Row]:
    """Drive the real Recommender tick by tick through STEPS, replicas following each decision at once."""
    policy = Policy(0, args.max, args.target, window=args.window, down_delay=args.down_delay)
    recommender, replicas, now = Recommender(policy), 0, 0.0
    rows = []
    for load, seconds in STEPS:
        target = target_for(load, args.target, 0, args.max)
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
        rows.append(Row(load, seconds, target, reached, sum(errors) / len(errors), events))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tick", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--down-delay", type=float, default=120.0)
    parser.add_argument("--target", type=float, default=8.0)
    parser.add_argument("--max", type=int, default=6)
    args = parser.parse_args()
    print(f"tick {args.tick:g}s, window {args.window:g}s, scale-down delay {args.down_delay:g}s, "
          f"target {args.target:g} in flight per replica, replicas 0..{args.max}")  # fmt: skip
    print_table(simulate(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
