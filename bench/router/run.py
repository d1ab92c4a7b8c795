"""Router benchmark: latency Flotilla adds over calling the backend directly, throughput and memory, side by
side with LiteLLM proxy and vllm-router, all in front of one fast fake OpenAI backend, in one run.

    python bench/router/run.py --nice -10            # full: 3 interleaved rounds, 4 s cells (~12 min)
    python bench/router/run.py --quick --nice -10    # 1 round, 2 s cells (~4 min)

How it measures (printed with the results): the harness starts every process itself and stops it by PID.
The fake backend (``backend.py``) and the load generator (``wrk``, see ``loadgen.py``) share one core, every
proxy gets the other core (``taskset``), so each proxy is measured as one process on one core; the ``direct``
rows (wrk -> backend, no proxy) show the ceiling of backend + load generator. Each cell is a closed-loop wrk
run at a fixed concurrency after a short warm-up at that concurrency; the contenders run back to back inside
each cell, in an order that rotates every round, so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import contenders
import loadgen
import procs
import report
import validating

LOGS = Path.home() / ".cache" / "flotilla" / "bench-router"
ALL = ["direct", "flotilla", "litellm", "vllm-router"]
OPTIONAL = [
    "flotilla-baseline",
    "flotilla-keyed",
    "flotilla-capture",
]  # FLOTILLA_BASELINE=<checkout>: the router of an earlier commit, same venv

LONG_PROMPT = (
    "I maintain a Python service that reads events from a Kafka topic, enriches each event with data from"
    " a PostgreSQL table and writes the result to S3 as Parquet files. Under load the consumer falls "
    "behind: CPU sits at 100% on one core while the other cores idle, memory grows until the pod is "
    "killed, and the lag keeps increasing. I suspect the enrichment step, which runs one SELECT per event"
    " through psycopg2, and the Parquet writer, which I flush after every batch of 500 rows. Please "
    "rewrite the consumer loop so that it batches database lookups, uses asyncio with a bounded queue for"
    " backpressure, spreads the CPU work over a process pool, and flushes Parquet files by size instead "
    "of by row count. Explain each change, show the new code with type hints and tests with pytest, and "
    "tell me which metrics I should export to Prometheus to see whether the fix works in production, "
    "including consumer lag and batch latency."
)  # about 200 tokens: the classification cost of `"model": "auto"` grows with the prompt


GENERAL_PROMPT = (
    "My grandmother turns ninety next spring and the whole family wants to surprise her with a weekend by"
    " the sea, in the small town where she grew up. There will be about thirty of us, from toddlers to "
    "her two remaining sisters, and some cousins have not seen each other for years. She walks slowly and"
    " tires quickly, so long trips and steep paths are out, but she loves boats, old songs, fresh fish "
    "and watching children play on the beach. What would make the weekend feel special without wearing "
    "her out? I am thinking of a slow boat trip along the coast, a long lunch in the harbour, an evening "
    "where everyone brings a story or a photo from her life, and a quiet morning on the last day. How "
    "should we spread these over two days, who should take care of what, and what small touches would "
    "make her feel that the day is about her and not about the rest of us? Any advice on keeping it a "
    "surprise until she arrives?"
)  # about 200 tokens, no task keyword: exercises the classifier past its rules


def _bodies(work: Path) -> dict[str, Path]:
    short = [{"role": "user", "content": "Say hello."}]
    long = [{"role": "user", "content": LONG_PROMPT}]
    bodies = {
        "json": {"model": "fake", "messages": short, "max_tokens": 16},
        "sse": {"model": "fake", "messages": short, "max_tokens": 16, "stream": True},
        "json-200tok": {"model": "fake", "messages": long, "max_tokens": 16},
        "json-200tok-auto": {"model": "auto", "messages": long, "max_tokens": 16},
        "json-200tok-auto-general": {
            "model": "auto",
            "messages": [{"role": "user", "content": GENERAL_PROMPT}],
            "max_tokens": 16,
        },
    }
    paths = {}
    for name, body in bodies.items():
        paths[name] = work / f"body-{name}.json"
        paths[name].write_text(json.dumps(body))
    return paths


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 2 s cells, 1 s warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds per measured cell")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each cell")
    parser.add_argument("--concurrency", default="1,64,256")
    parser.add_argument("--contenders", default=",".join(ALL), help=f"subset of {','.join(ALL)}")
    parser.add_argument("--proxy-cpus", default="0", help="cores for the proxy under test (taskset -c)")
    parser.add_argument("--load-cpus", default="1", help="cores for wrk and the fake backend")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the harness and all it starts, also between sessions "
        "(e.g. -10 on a shared machine; needs root)",
    )
    parser.add_argument(
        "--initial-warmup", type=int, default=5, help="seconds of load per contender after start-up, untimed"
    )
    parser.add_argument("--litellm-workers", type=int, default=1)
    parser.add_argument("--no-auto", action="store_true", help="skip the `model: auto` classification rows")
    parser.add_argument("--json", type=Path, help="also write raw results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup, args.initial_warmup = 1, 2, 1, 3
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        parser.error(f"--concurrency wants comma-separated integers, got {args.concurrency!r}")
    if args.rounds < 1 or args.duration < 1 or min(args.concurrency) < 1:
        parser.error("--rounds, --duration and every --concurrency must be at least 1")
    args.contenders = [c for c in args.contenders.split(",") if c]
    unknown = sorted(set(args.contenders) - set(ALL + OPTIONAL))
    if unknown:
        parser.error(f"unknown contenders: {', '.join(unknown)} (choose from {', '.join(ALL + OPTIONAL)})")
    if "direct" not in args.contenders:
        args.contenders.insert(0, "direct")
    if args.no_pin:
        args.proxy_cpus = args.load_cpus = None
    return args


class Bench:
    """Holds the running processes and the cells measured so far."""

    def __init__(self, args: argparse.Namespace, work: Path, backend_pid: int) -> None:
        self.args = args
        self.backend_pid = backend_pid
        self.work = work
        self.running: dict[str, contenders.Running] = {}
        self.skipped: dict[str, str] = {}
        self.rss: dict[str, tuple[int, int]] = {}
        self.cells: list[report.Cell] = []
        self.notes: list[str] = []

    def measure(
        self, name: str, scenario: str, body: Path, concurrency: int, rnd: int, label: str = ""
    ) -> None:
        """A warm-up run and a measured run of ``name``; the cell is recorded as ``label`` (default: name)."""
        running = self.running[name]
        url = f"{running.url}/v1/chat/completions"
        loadgen.run_wrk(url, body, concurrency, self.args.warmup, self.args.load_cpus)
        pid = running.proc.pid if running.proc else None
        members = procs.tree(pid) if pid else []
        cpu0, load0, cores0 = procs.cpu_seconds(members), self._load_cpu(), procs.core_times()
        with contextlib.ExitStack() as stack:
            sampler = stack.enter_context(procs.RssSampler(pid)) if pid else None
            result = loadgen.run_wrk(url, body, concurrency, self.args.duration, self.args.load_cpus)
        cpu, load = procs.cpu_seconds(members) - cpu0, self._load_cpu() - load0
        busy = tuple(procs.core_busy(cores0, procs.core_times()))
        peak = sampler.peak if sampler else 0
        if pid:
            idle, old_peak = self.rss[name]
            self.rss[name] = (idle, max(old_peak, peak))
        label = label or name
        if members:
            procs.settle(members)
        self.cells.append(report.Cell(label, scenario, concurrency, rnd, result, cpu, load, busy, peak))
        bad = f" FAILED {result.errors + result.non_2xx}" if result.errors or result.non_2xx else ""
        print(
            f"  r{rnd} {scenario:>11} c={concurrency:<3} {label:<14} {result.rps:8,.0f} req/s  "
            f"p50 {result.p50_us / 1000:7.2f} ms  p99 {result.p99_us / 1000:7.2f} ms{bad}",
            file=sys.stderr,
            flush=True,
        )

    def _load_cpu(self) -> float:
        """CPU seconds used so far by the load side: the fake backend plus every finished wrk run."""
        return procs.cpu_seconds([self.backend_pid]) + procs.children_cpu_seconds()

    def start_all(self, backend_url: str, bodies: dict[str, Path]) -> None:
        setup = contenders.Setup(
            backend_url, self.work, self.args.proxy_cpus, self.args.litellm_workers, self.args.nice
        )
        for name in self.args.contenders:
            try:
                running = contenders.STARTERS[name](setup)
            except procs.StartError as exc:
                self.skipped[name] = str(exc).splitlines()[0]
                print(f"skipping {name}: {exc}", file=sys.stderr)
                continue
            problem = validating.check(running.url)
            if problem:
                self.skipped[name] = problem
                print(f"skipping {name}: {problem}", file=sys.stderr)
                if running.proc:
                    running.proc.stop()
                continue
            self.running[name] = running
            if running.proc:
                time.sleep(1.0)  # let start-up work (imports, background tasks) settle before reading RSS
                self.rss[name] = (procs.rss_bytes(running.proc.pid), 0)
                self.warm(running, bodies)

    def warm(self, running: contenders.Running, bodies: dict[str, Path]) -> None:
        """Untimed load right after start-up: LiteLLM, for one, imports modules lazily on its first
        requests and needs seconds to reach its steady state. Per-cell warm-ups only refill pools."""
        if self.args.initial_warmup <= 0:
            return
        url = f"{running.url}/v1/chat/completions"
        for scenario in ("json", "sse"):
            loadgen.run_wrk(url, bodies[scenario], 8, self.args.initial_warmup, self.args.load_cpus)
        if running.proc:
            procs.settle(procs.tree(running.proc.pid))

    def stop_all(self) -> None:
        for running in self.running.values():
            if running.proc:
                running.proc.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    loadgen.require_wrk()
    if args.nice:
        try:
            os.nice(args.nice)  # inherited by the proxies, the backend and wrk alike
            procs.prioritise(os.getpid(), args.nice)  # wrk runs in this session
        except PermissionError:
            print(f"--nice {args.nice} needs root; running at the default priority", file=sys.stderr)
            args.nice = 0
    started = time.monotonic()
    LOGS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=LOGS))
    print(f"configs and process logs: {work}", file=sys.stderr)
    bodies = _bodies(work)
    backend = procs.start(
        "backend",
        procs.pinned([sys.executable, str(Path(__file__).with_name("backend.py"))], args.load_cpus),
        work,
        nice=args.nice,
    )
    bench = Bench(args, work, backend.pid)
    try:
        port = procs.wait_line(backend, "READY ", timeout=30)
        bench.start_all(f"http://127.0.0.1:{port}", bodies)
        names = [n for n in args.contenders if n in bench.running]
        # capture's cost grows with the prompt (redaction): with flotilla-capture, a 200-token prompt too
        capturing = "flotilla-capture" in names
        scenarios = ("json", "sse", "json-200tok") if capturing else ("json", "sse")
        for rnd in range(1, args.rounds + 1):
            order = names[rnd - 1 :] + names[: rnd - 1]  # rotate so no contender always runs first
            for scenario in scenarios:
                for concurrency in args.concurrency:
                    for name in order:
                        bench.measure(name, scenario, bodies[scenario], concurrency, rnd)
            flotillas = [n for n in ("flotilla", "flotilla-baseline") if n in bench.running]
            if not args.no_auto and flotillas:
                if rnd == 1:
                    for name in flotillas:
                        url = bench.running[name].url
                        for label, body in (
                            ("code", "json-200tok-auto"),
                            ("general", "json-200tok-auto-general"),
                        ):
                            seen = validating.route_headers(url, bodies[body].read_bytes())
                            routed = ", ".join(f"{k}: {v}" for k, v in seen.items() if "cost" not in k)
                            bench.notes.append(f"- {name}, `model: auto`, 200-token {label} prompt: {routed}")
                for concurrency in (1, 64):
                    bench.measure("direct", "json-200tok", bodies["json-200tok"], concurrency, rnd)
                    for name in flotillas:
                        if not (capturing and concurrency in args.concurrency):  # measured above
                            bench.measure(name, "json-200tok", bodies["json-200tok"], concurrency, rnd)
                        auto = bodies["json-200tok-auto"]
                        bench.measure(name, "json-200tok", auto, concurrency, rnd, label=f"{name} auto")
                        general = bodies["json-200tok-auto-general"]
                        label = f"{name} auto-general"
                        bench.measure(name, "json-200tok", general, concurrency, rnd, label=label)
    except (RuntimeError, procs.StartError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc} (logs in {work})", file=sys.stderr)
        return 1
    finally:
        bench.stop_all()
        backend.stop()
    elapsed = time.monotonic() - started
    if args.json:
        args.json.write_text(json.dumps([asdict(c) for c in bench.cells], indent=1))
    print(render(args, bench, names, elapsed))
    return 0


def render(args: argparse.Namespace, bench: Bench, names: list[str], elapsed: float) -> str:
    table = report.rows(bench.cells)
    pin = "not pinned" if args.proxy_cpus is None else f"proxy on core {args.proxy_cpus}, wrk + backend on "
    pin += "" if args.load_cpus is None else f"core {args.load_cpus}"
    contestants = "; ".join(f"{r.name}: {r.note}" for r in bench.running.values() if r.proc)
    parts = [
        "## Router benchmark",
        "",
        f"{args.rounds} round(s), {args.duration:g} s per cell after {args.warmup:g} s warm-up "
        f"({args.initial_warmup:g} s per contender after start-up); {pin}; nice {args.nice}; "
        f"{os.cpu_count()} cores; took {elapsed:.0f} s.",
        f"Contenders: {contestants}.",
        "Load: wrk (1 thread, closed loop, keep-alive) with post.lua; latency = send -> last byte. "
        "Backend: bench/router/backend.py (asyncio protocol on uvloop, pre-built replies). "
        "'added' = contender minus direct in the same round; medians over rounds. "
        "proxy CPU µs/req = CPU time of the proxy's process tree / requests; "
        "req/CPU-s = 1e6 / that (best cell). proxy CPU, wrk+backend CPU = share of one core each used during "
        "the cell; other CPU = cores busy with anything else on the machine.",
        "",
        report.summary_table(table, names, bench.rss),
        "",
        report.noise_warning(table, args.nice),
        "",
        report.goals(table, names, bench.cells),
        "",
        "### Every cell",
        "",
        report.latency_table(table),
    ]
    parts += ["", *bench.notes] if bench.notes else []
    if bench.skipped:
        parts += ["", "Not measured: " + "; ".join(f"{k}: {v}" for k, v in bench.skipped.items())]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
