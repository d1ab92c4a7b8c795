#!/usr/bin/env python3
"""End-to-end latency of one routed request vs calling the model pod directly, on the demo install.

Needs `make demo` (or `e2e/demo`) to have run: examples/03-local in namespace flotilla-demo, the Gemma pod
on the real node. How it measures: two `kubectl port-forward`s from this machine, one to the router
Service and one straight to the Gemma pod, so both paths cross the same forwarding; then rounds alternate
the two (routed first, then direct, same prompt, temperature 0, `max_tokens` tokens) and time each whole
non-streamed request with time.perf_counter. The routed path adds the router (classification is skipped
with the x-flotilla-task header, as the OpenAI model name would) and one more in-cluster hop. Reported:
p50 / p90 / mean per path and the p50 difference. The first `--warmup` rounds are not counted.

    .venv/bin/python bench/e2e_latency.py [--rounds 30] [--max-tokens 8] [--namespace flotilla-demo]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from demolib import asking, installing
from demolib.forwarding import port_forward
from demolib.tools import DemoError, Tools

PROMPT = "Name one planet of the solar system."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--namespace", default=installing.Target.namespace)
    args = parser.parse_args()
    tools = Tools.for_cluster()
    try:
        selector = f"flotilla.dev/fleet={installing.FLEET},flotilla.dev/model={installing.LOCAL_MODEL}"
        pods = [p for p in installing.pods_of(tools, args.namespace, selector) if installing.is_pod_ready(p)]
        if not pods:
            raise DemoError(f"no Ready Gemma pod in {args.namespace}: run `make demo` first")
        pod = pods[0]["metadata"]["name"]
        router = f"svc/{installing.FLEET}-router"
        with (
            port_forward(tools, args.namespace, router, 8080) as routed_port,
            port_forward(tools, args.namespace, f"pod/{pod}", 8080) as direct_port,
        ):
            samples: dict[str, list[float]] = {"routed": [], "direct": []}
            for round_ in range(args.warmup + args.rounds):
                routed = asking.chat(f"http://127.0.0.1:{routed_port}", PROMPT, args.max_tokens,
                                     headers={"x-flotilla-task": "chat"})  # fmt: skip
                direct = asking.chat(f"http://127.0.0.1:{direct_port}", PROMPT, args.max_tokens)
                if routed.status != 200 or direct.status != 200 or routed.model != installing.LOCAL_MODEL:
                    raise DemoError(f"unexpected answers: {routed} / {direct}")
                if round_ >= args.warmup:
                    samples["routed"].append(routed.seconds * 1000)
                    samples["direct"].append(direct.seconds * 1000)
    except DemoError as exc:
        print(f"e2e_latency: {exc}", file=sys.stderr)
        return 1
    print(f"{args.rounds} rounds, max_tokens={args.max_tokens}, both paths through kubectl port-forward")
    print(f"{'path':<8} {'p50 ms':>8} {'p90 ms':>8} {'mean ms':>8}")
    for path, values in samples.items():
        p50, p90 = percentile(values, 0.5), percentile(values, 0.9)
        print(f"{path:<8} {p50:8.1f} {p90:8.1f} {statistics.mean(values):8.1f}")
    added = percentile(samples["routed"], 0.5) - percentile(samples["direct"], 0.5)
    ratio = percentile(samples["routed"], 0.5) / percentile(samples["direct"], 0.5)
    print(f"router adds {added:.1f} ms at p50 ({ratio:.2f}x the direct call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
