#!/usr/bin/env python3
"""Three models packed in one `flotilla pack-serve` (Ray Serve) vs three llama.cpp servers, same run.

All local, loopback, Gemma 3 270M Q4_K_M under three names, each model 2048 context and 1 thread in both
setups (pack: llama-cpp-python `Llama` in a Ray Serve deployment per model; separate: `python -m
llama_cpp.server` per model, as tests/router/conftest.py starts it). Measured, in this order:
1. memory: both setups running with every model loaded and warmed by one request; the sum over each
   setup's process tree (its session: Ray's gcs_server, raylet, agents, Serve controller, proxy, ingress
   and replicas are all in pack-serve's) of RSS (shared pages counted in every process) and PSS (shared
   pages divided among their sharers, from /proc/PID/smaps_rollup);
2. latency: one `flotilla router` with the six models as upstreams; a non-streamed chat completion
   (max_tokens 1, temperature 0) per round to every model in turn, timed by the client around the whole
   request (time.perf_counter); the same requests straight to each server; medians and p90 over the rounds;
3. load time (a second pack-serve with maxLoaded 2, after the first run is stopped): a request to the
   least recently used, unloaded, model (held while the idle one is unloaded and it is loaded) vs the same
   request to a loaded model; rounds cycle a -> b -> c so every request after the first two loads;
4. pod count (first, from the operator's own plan, no process): N such models (the GGUF's size as
   placement.memory, 2048 context, 250m CPU) packed by `flotilla.packing.plans` with the default CPU budget
   (16Gi) and with a 3Gi pack, vs one pod each (N). `--plan-only` prints just these.

    PYTHONPATH=operator .venv/bin/python bench/packing.py [--rounds 20] [--load-rounds 6] [--plan-only]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "router"))

import yaml
from packkit import PackServe, memory_kib, session_pids
from routerkit import PYTHON, Proc, free_port, gemma_gguf

from flotilla.api.fleet import ModelFleet
from flotilla.packing import plans

NAMES = ["a", "b", "c"]
CONTEXT, THREADS = 2048, 1
ASK = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 1, "temperature": 0}


def pack_config(gguf: Path, max_loaded: int | None) -> dict[str, object]:
    models = [
        {"name": n, "gguf": str(gguf), "contextLength": CONTEXT, "threads": THREADS, "chatFormat": "gemma"}
        for n in NAMES
    ]
    return {"models": models, **({"maxLoaded": max_loaded} if max_loaded else {})}


def start_llama(logs: Path, gguf: Path, name: str) -> tuple[Proc, str]:
    port = free_port()
    argv = [PYTHON, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", name]
    argv += ["--chat_format", "gemma", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--n_ctx", str(CONTEXT), "--n_threads", str(THREADS)]
    proc = Proc(f"llama-{name}", argv, logs)
    proc.wait_http(f"http://127.0.0.1:{port}/v1/models", 300)
    return proc, f"http://127.0.0.1:{port}"


def start_router(logs: Path, upstreams: dict[str, str]) -> tuple[Proc, str]:
    config = {
        "fleet": "bench",
        "defaultTask": "chat",
        "tasks": [{"name": "chat", "models": list(upstreams)}],
        "models": [
            {"name": n, "servedModelName": n, "endpoints": [u], "firstByteTimeoutSeconds": 120}
            for n, u in upstreams.items()
        ],
        "coldStartBudgetSeconds": 120,
    }
    path = logs / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = Proc(
        "router", [PYTHON, "-m", "flotilla.cli", "router", "--config", str(path), "--port", str(port)], logs
    )
    proc.wait_http(f"http://127.0.0.1:{port}/readyz", 60)
    return proc, f"http://127.0.0.1:{port}"


def timed(client: httpx.Client, url: str, model: str) -> float:
    started = time.perf_counter()
    response = client.post(url, json={**ASK, "model": model})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def p90(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.9 * len(values)) - 1)]


def tree_memory(sid: int) -> tuple[float, float, int]:
    pids = session_pids(sid)
    rss, pss = memory_kib(pids)
    return rss / 1024, pss / 1024, len(pids)


def replica_pids(sid: int) -> list[int]:
    """The pack's model replicas (Ray names its actor processes ray::ServeReplica:APP:DEPLOYMENT)."""
    found = []
    for pid in session_pids(sid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if command.startswith(b"ray::ServeReplica:pack:model-"):
            found.append(pid)
    return found


def pod_counts(gguf: Path, counts: tuple[int, ...] = (3, 6, 12, 24)) -> list[tuple[str, str]]:
    """Pods the operator's plan needs for N Gemma models packed (16Gi default budget, a 3Gi pack) vs one
    pod each."""
    size = f"{-(-gguf.stat().st_size // 2**20)}Mi"
    rows = []
    for n in counts:
        pods = {}
        for pack, packs in (("auto", []), ("small", [{"name": "small", "memory": "3Gi"}])):
            model = {
                "runtime": "llamacpp",
                "maxContextLength": CONTEXT,
                "resources": {"requests": {"cpu": "250m"}},
            }
            models = [
                {**model, "name": f"m{i}", "source": {"uri": f"pvc://gguf/{gguf.name}"},
                 "placement": {"pack": pack, "memory": size}}
                for i in range(n)
            ]  # fmt: skip
            body = {
                "metadata": {"name": "bench", "namespace": "bench"},
                "spec": {"models": models, "packs": packs},
            }
            plan = plans.plan(ModelFleet.from_body(body).spec)
            assert not plan.unplaced, plan.unplaced
            pods[pack] = len(plan.pods)
        rows.append(
            (
                f"pods for {n} models ({size} each)",
                f"packed {pods['auto']} (16Gi budget), {pods['small']} (3Gi pack) vs {n} one pod each",
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--load-rounds", type=int, default=6)
    parser.add_argument("--plan-only", action="store_true", help="only the pod counts from the plan")
    args = parser.parse_args()
    gguf = gemma_gguf()
    if args.plan_only:
        for key, value in pod_counts(gguf):
            print(f"{key}  {value}")
        return 0
    logs = Path(f"/tmp/flotilla-bench-packing-{time.time_ns():x}")
    logs.mkdir()
    pack = PackServe(logs, pack_config(gguf, None))
    llamas: list[tuple[Proc, str]] = []
    router: Proc | None = None
    rows: list[tuple[str, str]] = pod_counts(gguf)
    try:
        started = time.perf_counter()
        pack.wait_ready()
        pack_start = time.perf_counter() - started
        started = time.perf_counter()
        llamas = [start_llama(logs, gguf, n) for n in NAMES]
        llama_start = (time.perf_counter() - started) / len(NAMES)
        upstreams = {f"pack-{n}": f"{pack.url}/{n}" for n in NAMES}
        upstreams |= {f"llama-{n}": url for n, (_, url) in zip(NAMES, llamas, strict=True)}
        router, router_url = start_router(logs, upstreams)
        with httpx.Client(timeout=300) as client:
            for model, url in upstreams.items():  # warm every model (KV cache allocated, pages touched)
                timed(client, f"{url}/v1/chat/completions", model.split("-")[1])
            time.sleep(2)
            pack_rss, pack_pss, pack_n = tree_memory(pack.sid)
            replica_rss, replica_pss = (kib / 1024 for kib in memory_kib(replica_pids(pack.sid)))
            sep = [tree_memory(proc.pid) for proc, _ in llamas]
            sep_rss, sep_pss, sep_n = sum(s[0] for s in sep), sum(s[1] for s in sep), sum(s[2] for s in sep)
            rows += [
                (
                    "memory, 3 models packed (1 pack-serve)",
                    f"RSS {pack_rss:.0f} MiB, PSS {pack_pss:.0f} MiB, {pack_n} processes",
                ),
                (
                    "  of which the 3 model replicas",
                    f"RSS {replica_rss:.0f} MiB, PSS {replica_pss:.0f} MiB (the rest: Ray and Serve)",
                ),
                (
                    "memory, 3 llama.cpp servers",
                    f"RSS {sep_rss:.0f} MiB, PSS {sep_pss:.0f} MiB, {sep_n} processes",
                ),
                (
                    "start to ready",
                    f"pack-serve (3 models) {pack_start:.1f} s; one llama.cpp server {llama_start:.1f} s",
                ),
            ]
            samples: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for model, url in upstreams.items():
                    name = model.split("-")[1]
                    samples.setdefault(f"router {model.split('-')[0]}", []).append(
                        timed(client, f"{router_url}/v1/chat/completions", model)
                    )
                    samples.setdefault(f"direct {model.split('-')[0]}", []).append(
                        timed(client, f"{url}/v1/chat/completions", name)
                    )
        for key in ("direct llama", "direct pack", "router llama", "router pack"):
            values = samples[key]
            rows.append(
                (
                    f"latency {key} (ms)",
                    f"median {1000 * statistics.median(values):.0f}, p90 {1000 * p90(values):.0f}",
                )
            )
        added = statistics.median(samples["router pack"]) - statistics.median(samples["router llama"])
        rows.append(("Ray Serve's added latency through the router (median)", f"{1000 * added:+.0f} ms"))
    finally:
        if router is not None:
            router.stop()
        for proc, _ in llamas:
            proc.stop()
        leftovers = pack.stop()
        if leftovers:
            print(f"packing: pack-serve left {leftovers} after SIGTERM (killed)", file=sys.stderr)

    pack = PackServe(logs, pack_config(gguf, 2), name="pack-serve-lru")
    try:
        pack.wait_ready()
        cold: list[float] = []
        warm: list[float] = []
        with httpx.Client(timeout=300) as client:
            timed(client, f"{pack.url}/a/v1/chat/completions", "a")
            timed(client, f"{pack.url}/b/v1/chat/completions", "b")
            for i in range(args.load_rounds):  # c, a, b, ...: each the least recently used, unloaded
                name = NAMES[(i + 2) % 3]
                cold.append(timed(client, f"{pack.url}/{name}/v1/chat/completions", name))
                warm.append(timed(client, f"{pack.url}/{name}/v1/chat/completions", name))
        rows.append(
            (
                "request to an unloaded model, maxLoaded 2 (s)",
                f"median {statistics.median(cold):.2f} (max {max(cold):.2f}) "
                f"vs loaded {statistics.median(warm):.2f}",
            )
        )
    finally:
        leftovers = pack.stop()
        if leftovers:
            print(f"packing: pack-serve left {leftovers} after SIGTERM (killed)", file=sys.stderr)

    print(
        f"Gemma 3 270M Q4_K_M x3, n_ctx {CONTEXT}, {THREADS} thread each; {args.rounds} latency rounds, "
        f"{args.load_rounds} load rounds; max_tokens 1; logs in {logs}"
    )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
