#!/usr/bin/env python3
"""Scale from zero on the real node: first request at zero → first answer, and the spill-over latency.

Needs `make demo` (or `e2e/demo`): the helm-installed operator (its built-in autoscaler, 5 s ticks) and the
stand-in fallback in namespace flotilla-demo. It adds two fleets derived from examples/03-local with the
Gemma model at min 0 on the real node: `bench-hold` (cold-start budget 300 s: the request is held until
the pod is Ready) and `bench-spill` (budget 1 s: the request goes to the fallback with reason `cold`, the
model starts anyway). Each round waits until both models are parked at zero (pods gone), then times, with
time.perf_counter around whole non-streamed requests through kubectl port-forward:
- hold: the first request at zero until its answer (router hold + autoscaler tick + pod start + model
  load + the completion);
- spill: the first request at zero until the fallback's answer, and from it until the spilled model's
  Deployment reports a Ready replica (the model keeps warming for the next requests).
The fleets are deleted at the end.

    .venv/bin/python bench/cold_start.py [--rounds 3] [--namespace flotilla-demo]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from clusterlib.waiting import wait_until
from demolib import asking, fleets, installing
from demolib.forwarding import port_forward
from demolib.tools import DemoError, Tools

IDLE_DELAY = "20s"
BUDGETS = {"bench-hold": "300s", "bench-spill": "1s"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--namespace", default=installing.Target.namespace)
    args = parser.parse_args()
    tools = Tools.for_cluster()
    ns = args.namespace
    example = yaml.safe_load((installing.EXAMPLE / "fleet.yaml").read_text())
    hold, spill, warm = [], [], []
    try:
        installing.fleet(tools, ns)  # the demo is there
        for name, budget in BUDGETS.items():
            tools.apply(ns, fleets.cold_fleet(example, name, budget, IDLE_DELAY))
        for name in BUDGETS:
            installing.wait_fleet_ready(tools, ns, 300, name=name)
        with (
            port_forward(tools, ns, "svc/bench-hold-router", 8080) as hold_port,
            port_forward(tools, ns, "svc/bench-spill-router", 8080) as spill_port,
        ):
            for round_ in range(1, args.rounds + 1):
                for name in BUDGETS:
                    parked = functools.partial(fleets.parked_at_zero, tools, ns, name)
                    wait_until(parked, 300, f"{name} parked at zero", interval=1)
                answer = asking.chat(f"http://127.0.0.1:{hold_port}", "Hello! Who are you?", 16, timeout=600)
                if (answer.status, answer.model) != (200, installing.LOCAL_MODEL):
                    raise DemoError(f"held request not answered by the model: {answer}")
                hold.append(answer.seconds)
                answer = asking.chat(f"http://127.0.0.1:{spill_port}", "Hello! Who are you?", 16)
                if (answer.status, answer.reason) != (200, "fallback:cold"):
                    raise DemoError(f"spilled request not answered by the fallback: {answer}")
                spilled_at = time.perf_counter()
                spill.append(answer.seconds)
                ready = functools.partial(fleets.ready_replicas, tools, ns, "bench-spill")
                wait_until(ready, 600, "the spilled model Ready", interval=0.5)
                warm.append(time.perf_counter() - spilled_at)
                print(f"round {round_}: held {hold[-1]:.1f} s, spilled {spill[-1]:.2f} s, "
                      f"spilled model Ready {warm[-1]:.1f} s later", file=sys.stderr)  # fmt: skip
    except (DemoError, AssertionError) as exc:
        print(f"cold_start: {exc}", file=sys.stderr)
        return 1
    finally:
        for name in BUDGETS:
            tools.kubectl("delete", "modelfleet", name, "-n", ns, "--ignore-not-found", check=False)
    print(f"{args.rounds} rounds; Gemma 3 270M (llama-cpp-python) on the real node, autoscaler tick 5 s")
    print(f"{'measure':<52} {'median s':>9} {'min s':>7} {'max s':>7}")
    rows = [
        ("first request at zero -> answer (held, budget 300s)", hold),
        ("first request at zero -> fallback answer (budget 1s)", spill),
        ("after the spill: model Ready", warm),
    ]
    for label, values in rows:
        print(f"{label:<52} {statistics.median(values):9.2f} {min(values):7.2f} {max(values):7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
