#!/usr/bin/env python3
"""Benchmark the operator against the local cluster: apply → children latency, a 100-fleet burst, memory.

Needs a running local cluster (``e2e/cluster up``; KUBECONFIG from ``eval "$(e2e/cluster env)"``). It
installs the CRDs and the operator's RBAC, starts ``flotilla operator`` as a separate process with the
operator's ServiceAccount (as in production), works in a fresh namespace and deletes it at the end.

How it measures:
- latency: fleets are created one at a time through the API (``create``); the clock starts just before
  the create call and stops when every rendered child exists, polling the children's lists every 20 ms
  (so each sample is accurate to ~20 ms plus one list round trip);
- burst: N fleets are created back to back, the clock runs until every child of every fleet exists and
  until every fleet's ``status.observedGeneration`` equals its generation (status written after apply);
- memory: the operator's VmRSS (and peak VmHWM) from /proc once the burst is reconciled.

    .venv/bin/python bench/operator_bench.py [--latency-fleets 20] [--burst-fleets 100]
        [--example 02-realistic]
"""

from __future__ import annotations

import os
import sys

# The benchmark drives the cluster with the integration tests' helpers.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "tests", "integration"))

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import operatorkit as ok  # noqa: E402  (test helpers: kubectl, the operator process)
from kubernetes import client as k8s  # noqa: E402

from flotilla.api import fleet as fleet_api  # noqa: E402
from flotilla.reconcile import kube, planning  # noqa: E402

POLL = 0.02


def fleet(example: str, namespace: str, name: str) -> dict[str, Any]:
    """An example fleet renamed into the bench namespace, with tiny requests so many fit the kwok nodes."""
    doc = ok.fleet_doc(ok.ROOT / "examples" / example / "fleet.yaml", namespace, name=name)
    for model in doc["spec"]["models"]:
        model["resources"] = {"requests": {"cpu": "10m", "memory": "16Mi"}}
    doc["spec"]["router"] = {"replicas": 1}
    return doc


def existing(client: kube.Kube, namespace: str) -> set[tuple[str, planning.ChildKey]]:
    """(fleet, child key) of every managed child in the namespace."""
    selector = f"{planning.MANAGED_BY}={planning.MANAGER}"
    return {
        (item["metadata"]["labels"][planning.FLEET_LABEL], planning.child_key(item))
        for kind in kube.CHILD_KINDS
        for item in client.list(kind, namespace, selector)
    }


def create(api: k8s.CustomObjectsApi, doc: dict[str, Any]) -> None:
    api.create_namespaced_custom_object(
        fleet_api.GROUP, fleet_api.VERSION, doc["metadata"]["namespace"], fleet_api.PLURAL, doc
    )


def wait_for(check: Any, timeout: float) -> float:
    """Seconds until ``check()`` is true, polling every POLL seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s")
        time.sleep(POLL)
    return time.monotonic() - start


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency-fleets", type=int, default=20)
    parser.add_argument("--burst-fleets", type=int, default=100)
    parser.add_argument(
        "--example", default="02-realistic", help="folder under examples/ (default 02-realistic)"
    )
    parser.add_argument("--keep-crds", action="store_true", help="use the CRDs already installed")
    args = parser.parse_args()

    if not args.keep_crds:
        ok.install_crds()
    workdir = ok.temp_dir("flotilla-bench-")
    operator = ok.OperatorProcess(ok.service_account_kubeconfig(workdir), workdir)
    namespace = f"flotilla-bench-{uuid.uuid4().hex[:6]}"
    ok.kubectl("create", "namespace", namespace)
    client = kube.Kube.connect()
    api = k8s.CustomObjectsApi(client.api)
    rows: list[tuple[str, str, str]] = []
    try:
        operator.start()
        warm = fleet(args.example, namespace, "warm-up")  # not measured: waits out kopf's first watch setup
        create(api, warm)
        wanted = {(warm["metadata"]["name"], key) for key in ok.expected_keys(warm)}
        wait_for(lambda: wanted <= existing(client, namespace), 120)
        rss_idle = operator.rss_bytes()
        samples: list[float] = []
        for i in range(args.latency_fleets):
            doc = fleet(args.example, namespace, f"lat-{i:02d}")
            want = {(doc["metadata"]["name"], key) for key in ok.expected_keys(doc)}
            start = time.monotonic()
            create(api, doc)
            wait_for(lambda want=want: want <= existing(client, namespace), 60)
            samples.append(time.monotonic() - start)
        children_per_fleet = len(want)
        rows += [
            (f"apply → all {children_per_fleet} children created, p50 ({len(samples)} fleets, one at a time)",
             f"{statistics.median(samples) * 1000:.0f} ms", "< 1 s"),
            ("apply → all children created, p95", f"{percentile(samples, 95) * 1000:.0f} ms", ""),
            ("apply → all children created, max", f"{max(samples) * 1000:.0f} ms", ""),
        ]  # fmt: skip

        docs = [fleet(args.example, namespace, f"burst-{i:03d}") for i in range(args.burst_fleets)]
        want_all = {(d["metadata"]["name"], key) for d in docs for key in ok.expected_keys(d)}
        cpu_before = _cpu_seconds(operator)
        start = time.monotonic()
        for doc in docs:
            create(api, doc)
        created = time.monotonic() - start
        children = wait_for(lambda: want_all <= existing(client, namespace), 600) + created

        def observed() -> bool:
            items = api.list_namespaced_custom_object(
                fleet_api.GROUP, fleet_api.VERSION, namespace, fleet_api.PLURAL
            )["items"]
            return all(
                (f.get("status") or {}).get("observedGeneration") == f["metadata"]["generation"]
                for f in items
            )

        reconciled = wait_for(observed, 600) + children
        cpu = _cpu_seconds(operator) - cpu_before
        rss = operator.rss_bytes()
        peak = operator.rss_bytes("VmHWM")
        total = args.burst_fleets + args.latency_fleets + 1
        n = args.burst_fleets
        rows += [
            (f"{args.burst_fleets} fleets created at once (API calls)", f"{created:.1f} s", ""),
            (f"{n} fleets → all {len(want_all)} children created", f"{children:.1f} s", "< 60 s"),
            (f"{n} fleets → every status.observedGeneration current", f"{reconciled:.1f} s", "< 60 s"),
            (f"operator CPU time during the {n}-fleet burst", f"{cpu:.1f} s", ""),
            ("operator RSS after start (one fleet)", f"{rss_idle / 2**20:.0f} MiB", ""),
            (f"operator RSS with {total} fleets reconciled", f"{rss / 2**20:.0f} MiB", "< 150 MB"),
            ("operator peak RSS (VmHWM)", f"{peak / 2**20:.0f} MiB", ""),
        ]  # fmt: skip
    finally:
        operator.stop()
        ok.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        client.close()

    width = max(len(r[0]) for r in rows)
    print(f"\nflotilla operator benchmark (example {args.example}; operator log {operator.log_path})\n")
    print(f"| {'measure':<{width}} | {'result':>9} | goal     |")
    print(f"|{'-' * (width + 2)}|{'-' * 11}|----------|")
    for name, value, goal in rows:
        print(f"| {name:<{width}} | {value:>9} | {goal:<8} |")
    return 0


def _cpu_seconds(operator: ok.OperatorProcess) -> float:
    """User + system CPU seconds the operator process has used so far."""
    assert operator.proc is not None
    fields = Path(f"/proc/{operator.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
