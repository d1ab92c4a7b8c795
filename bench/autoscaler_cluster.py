#!/usr/bin/env python3
"""Replica tracking under a stepped load on the local cluster: the real operator process scaling a kwok GPU
model on the load a router reports, end to end (scrape, decision, scale patch, kwok pods).

Needs a running local cluster (``e2e/cluster up``; KUBECONFIG and PATH from ``eval "$(e2e/cluster env)"``).
It installs the CRDs and the operator's RBAC, starts ``flotilla operator --namespace <fresh ns>`` as the
operator's ServiceAccount with short autoscaler ticks, applies a fleet with one GPU model (0..max replicas;
kwok marks its pods Ready), and publishes a stand-in router pod (a real HTTP server exporting the router's
real prometheus-client gauges, as in tests/integration/autoscaler) through the router Service's
EndpointSlice. The namespace is deleted at the end.

How it measures: the model starts parked at 0 (not timed). Each step sets the stand-in router's in-flight
gauge to the step's load at t=0 and holds it; every ``--sample`` seconds (0.5) the Deployment is read
through the API (spec.replicas and status.readyReplicas). Per step: the load-derived target
(ceil(load / targetInFlight) within min..max), seconds from t=0 until the first sample where spec.replicas
equalled the target and until readyReplicas did (kwok start-up; so both are accurate to one sample plus an
API read), mean |spec.replicas - target| over the step's samples, and scale events (the autoscaler's
replica-changing Events on the fleet, counted at each step's end: an Event posted within an API call of a
step's end may land in the next step). Scale-down waits for window + scale-down delay by design.

    .venv/bin/python bench/autoscaler_cluster.py [--interval 0.5] [--window 4] [--down-delay 10]
        [--target 4] [--max 6] [--sample 0.5]
"""

from __future__ import annotations

import os
import sys

# The benchmark drives the cluster with the integration tests' helpers.
_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration")
sys.path[1:1] = [_TESTS, os.path.join(_TESTS, "autoscaler")]

import argparse  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import operatorkit as ok  # noqa: E402  (test helpers: kubectl, the operator process)
import scalingkit as rk  # noqa: E402  (test helpers: the GPU fleet, stand-in router pods, scale Events)
from kubernetes import client as k8s  # noqa: E402

from autoscaler import Row, print_table, target_for  # noqa: E402  (bench/autoscaler.py: the shared table)
from flotilla.reconcile import kube  # noqa: E402

STEPS = [(3.0, 20), (10.0, 20), (22.0, 25), (13.0, 30), (0.0, 30)]
"""(in-flight load, seconds held), starting from a model parked at 0."""


def track(
    apps: k8s.AppsV1Api, router: rk.RouterMetricsServer, namespace: str, args: argparse.Namespace
) -> list[Row]:
    """Run STEPS against the operator, sampling the model Deployment every ``args.sample`` seconds."""
    rows = []
    events = len(rk.scale_events(namespace))
    for load, seconds in STEPS:
        target = target_for(load, args.target, 0, args.max)
        router.set("coder", in_flight=load)
        start = time.monotonic()
        reached: float | None = None
        ready: float | None = None
        errors: list[int] = []
        for k in range(int(seconds / args.sample)):
            time.sleep(max(0.0, start + k * args.sample - time.monotonic()))
            at = time.monotonic() - start
            deployment = apps.read_namespaced_deployment(rk.DEPLOYMENT, namespace)
            spec = int(deployment.spec.replicas or 0)
            up = int(deployment.status.ready_replicas or 0)
            errors.append(abs(spec - target))
            if reached is None and spec == target:
                reached = at
            if ready is None and up == target and spec == target:
                ready = at
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        now = len(rk.scale_events(namespace))
        rows.append(Row(load, seconds, target, reached, sum(errors) / len(errors), now - events, ready))
        events = now
    return rows


def park(apps: k8s.AppsV1Api, namespace: str, timeout: float) -> None:
    """Wait until the new model Deployment is at 0 replicas, none ready (it starts at 1; no load)."""

    def parked() -> bool:
        deployment = apps.read_namespaced_deployment(rk.DEPLOYMENT, namespace)
        return deployment.spec.replicas == 0 and not deployment.status.ready_replicas

    ok.wait_until(parked, timeout, f"{rk.DEPLOYMENT} parked at 0 replicas", interval=0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--interval", type=float, default=0.5, help="autoscaler tick, seconds")
    parser.add_argument("--window", type=float, default=4.0)
    parser.add_argument("--down-delay", type=float, default=10.0)
    parser.add_argument("--target", type=int, default=4, help="targetInFlight")
    parser.add_argument("--max", type=int, default=6, help="replicas.max (the kwok GPU node has 8 GPUs)")
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between Deployment reads")
    parser.add_argument("--keep-crds", action="store_true", help="use the CRDs already installed")
    args = parser.parse_args()

    if not args.keep_crds:
        ok.install_crds()
    workdir = ok.temp_dir("flotilla-bench-autoscaler-")
    namespace = f"flotilla-bench-{uuid.uuid4().hex[:6]}"
    operator = ok.OperatorProcess(
        ok.service_account_kubeconfig(workdir), workdir, args=("--namespace", namespace),
        env=rk.autoscaler_env(args.interval),
    )  # fmt: skip
    ok.kubectl("create", "namespace", namespace)
    router = rk.RouterMetricsServer().start()
    client = kube.Kube.connect()
    apps = k8s.AppsV1Api(client.api)
    try:
        router.set("coder")
        operator.start()
        ok.apply_doc(rk.fleet_doc(namespace, target=args.target, window=args.window,
                                  down_delay=args.down_delay, max_replicas=args.max))  # fmt: skip
        rk.publish_router(namespace, router.url)
        rk.wait_deployment(namespace)
        park(apps, namespace, args.window + args.down_delay + 120)
        rows = track(apps, router, namespace, args)
    finally:
        operator.stop()
        router.stop()
        client.close()
        ok.kubectl("delete", "namespace", namespace, "--wait=false", check=False)

    print(f"\nflotilla operator on the local cluster (kwok GPU model; operator log {operator.log_path})")
    print(f"tick {args.interval:g}s, window {args.window:g}s, scale-down delay {args.down_delay:g}s, "
          f"target {args.target} in flight per replica, replicas 0..{args.max}, "
          f"sampled every {args.sample:g}s")  # fmt: skip
    print_table(rows, ready=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
