"""`e2e/demo`: the whole demo in one command (what `make demo` runs after the setup), or `e2e/demo down`.

Steps, each timed: the local cluster with its real node (`e2e/cluster up --real-node`), the images built
and loaded into the node's containerd, the chart installed with the operator on the real node, the example
fleet applied (Gemma on the real node, GPU models simulated on kwok, the fallback), then prompts of several
task types sent through the in-cluster router over `kubectl port-forward`, and `kubectl get mf`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from clusterlib import nodeconfig, settings
from demolib import asking, installing
from demolib.forwarding import port_forward
from demolib.installing import Provider, Target, say
from demolib.tools import DemoError, Tools

E2E = Path(__file__).resolve().parents[1]
PROMPTS = (
    "Hi! In one sentence, what is Kubernetes?",
    "Write a python function that returns the n-th Fibonacci number.",
    "Solve for x: 3x + 5 = 20",
    "Write a short poem about the sea.",
)
STREAMED = "The three primary colours are"
T = TypeVar("T")


def _timed(timings: list[tuple[str, float]], what: str, step: Callable[[], T]) -> T:
    say(f"==> {what}")
    start = time.perf_counter()
    result = step()
    timings.append((what, time.perf_counter() - start))
    say(f"    done in {timings[-1][1]:.1f} s")
    return result


def _cluster_up() -> None:
    done = subprocess.run([str(E2E / "cluster"), "up", "--real-node"], text=True, check=False)
    if done.returncode != 0:
        raise DemoError("e2e/cluster up --real-node failed (its message is above)")


def show_answers(base_url: str) -> None:
    """Each prompt with the task the router chose, the model that answered, why, the cost and the answer."""
    for prompt in PROMPTS:
        answer = asking.chat(base_url, prompt)
        cost = float(answer.headers.get("x-flotilla-cost-usd", "0") or 0)
        print(f"\n> {prompt}")
        print(
            f"  task={answer.task} model={answer.model} reason={answer.reason} "
            f"cost=${cost:.8f} status={answer.status} {answer.seconds * 1000:.0f} ms"
        )
        text = answer.text.strip() or str(answer.body.get("error", {}).get("message", ""))
        print(textwrap.indent(textwrap.fill(" ".join(text.split())[:400], 100), "  "))
    streamed = asking.chat_stream(base_url, STREAMED, max_tokens=24)
    first_ms = streamed.first_byte_seconds * 1000
    print(f"\n> {STREAMED}   (streamed: {streamed.events} events, first after {first_ms:.0f} ms)")
    print(f"  task={streamed.task} model={streamed.model} reason={streamed.reason}")
    print(textwrap.indent(textwrap.fill(" ".join(streamed.text.split()), 100), "  "))


def run(target: Target, build: bool) -> None:
    timings: list[tuple[str, float]] = []
    start = time.perf_counter()
    _timed(timings, "local cluster with the real node (e2e/cluster up --real-node)", _cluster_up)
    tools = Tools.for_cluster()
    if build:
        socket = nodeconfig.NodeFiles(settings.load().state_dir, settings.load().cache_dir).containerd_socket
        rows = _timed(timings, "images: build and load into the node (scripts/build-images --load)",
                      lambda: installing.build_images(socket))  # fmt: skip
        for row in rows:
            say(f"    {row['image']}: {row['size_mb']} MB")
    _timed(timings, f"helm upgrade --install {target.release} (operator on real-0)",
           lambda: installing.install_operator(tools, target))  # fmt: skip
    provider = Provider.from_environment()
    say(f"    fallback provider: {provider.name}"
        + (" (no OPENAI_API_KEY/ANTHROPIC_API_KEY set: a local stand-in that says it is one)"
           if provider.fallback is None else ""))  # fmt: skip

    def apply_and_wait() -> None:
        installing.apply_example(tools, target, provider)
        installing.wait_fleet_ready(tools, target.namespace, 600)

    _timed(timings, f"example fleet examples/03-local in {target.namespace}, until Ready", apply_and_wait)
    router = f"svc/{installing.FLEET}-router"

    def ask() -> None:
        with port_forward(tools, target.namespace, router, 8080) as port:
            say(f"    kubectl port-forward {router} -> http://127.0.0.1:{port}")
            show_answers(f"http://127.0.0.1:{port}")

    _timed(timings, "prompts through the in-cluster router", ask)
    print()
    print(tools.kubectl("get", "mf", "-n", target.namespace))
    print(tools.kubectl("get", "pods", "-n", target.namespace, "-o", "wide"))
    total = time.perf_counter() - start
    say("timings: " + ", ".join(f"{what.split(' (')[0]} {seconds:.1f} s" for what, seconds in timings))
    say(f"demo done in {total:.1f} s. Try it yourself:")
    say(f'  eval "$(e2e/cluster env)"; kubectl -n {target.namespace} port-forward {router} 8080:8080 &')
    say("  curl -s localhost:8080/v1/chat/completions -H 'content-type: application/json' \\")
    say('    -d \'{"messages":[{"role":"user","content":"Hello!"}]}\' -D - ')
    say("Stop everything: e2e/demo down (uninstalls) or e2e/cluster down (stops the whole cluster).")


def down(target: Target) -> None:
    tools = Tools.for_cluster()
    tools.kubectl("delete", "namespace", target.namespace, "--ignore-not-found", "--wait=true", timeout=300)
    tools.helm("uninstall", target.release, "--namespace", target.operator_namespace, "--ignore-not-found")
    say(f"removed {target.namespace} and the {target.release} release; the cluster runs on")


def main(argv: Sequence[str]) -> int:
    summary = __doc__.splitlines()[0] if __doc__ else None
    parser = argparse.ArgumentParser(prog="e2e/demo", description=summary)
    parser.add_argument("command", nargs="?", choices=("run", "down"), default="run")
    parser.add_argument("--namespace", default=Target.namespace, help="the fleet's namespace")
    parser.add_argument("--no-build", action="store_true", help="use the images already in the node")
    args = parser.parse_args(argv)
    target = Target(namespace=args.namespace)
    try:
        if args.command == "down":
            down(target)
        else:
            run(target, build=not args.no_build)
    except (DemoError, settings.ClusterError) as exc:
        print(f"e2e/demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
