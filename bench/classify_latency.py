"""Classification latency and memory: p50/p99 of ``Classifier.classify`` for 200- and 2,000-token prompts.

    .venv/bin/python -P bench/classify_latency.py [--iterations 3000] [--cpu 0]

How it measures: the process pins itself to one CPU (``sched_setaffinity``) and limits numpy/BLAS and the
tokenizer to one thread before importing them; the classifier is built once from the built-in presets
(code, math, writing, default chat) with the packaged embedding and head; each case is warmed up, then timed
call by call, as wall clock (``perf_counter_ns``: other processes on the shared 2-core machine show in p99)
and as the thread's CPU time (``thread_time_ns``: what the call itself costs). Cases: a code and a general
prompt of ~200 tokens, the same padded to ~2,000 tokens, a 3-turn conversation, a fleet with an extra task
(the rules stage runs too), and the embedding alone. Memory: the process's resident set once the router's
modules are imported, after building the classifier (what the classifier adds to a router), and after
classifying every prompt of routing-train (13 languages: most of both token tables is paged in).
Goal: CPU p50 <= 5 ms and p99 <= 15 ms for 200 and 2,000 tokens; <= 150 MB added.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

CODE_PROMPT = (
    "I have a Python service that reads orders from a queue and writes them to PostgreSQL. Under load the "
    "worker sometimes crashes with `psycopg2.OperationalError: server closed the connection unexpectedly`. "
    "Here is the relevant part:\n```python\ndef handle(batch):\n    conn = pool.getconn()\n"
    "    with conn.cursor() as cur:\n        for order in batch:\n"
    "            cur.execute(INSERT_SQL, order.as_row())\n    conn.commit()\n"
    "    pool.putconn(conn)\n```\nHow should I restructure this so a dropped connection is retried, "
    "the batch is "
    "not half written, and connections always go back to the pool even when an exception is raised? Please "
    "explain the trade-offs of retrying inside the worker versus letting the queue redeliver the message."
)
PLAIN_PROMPT = (
    "My grandmother moved into a smaller apartment last spring and she has been feeling lonely since then. "
    "She used to know all of her neighbours, walk to the market every morning and meet her friends at the "
    "community garden on weekends. Now most of her old friends live across town and she does not like taking "
    "the bus on her own. I visit her twice a week but I live far away and work long hours. What are some "
    "gentle ways to help an older person build a new social circle in an unfamiliar neighbourhood? I am "
    "thinking about local clubs, volunteering, or classes at the library, but I am not sure how to bring it "
    "up "
    "without making her feel pushed. How do other families handle this kind of change, and what signs should "
    "I watch for that loneliness is turning into something more serious that needs a doctor?"
)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _time(call: Callable[[], object], iterations: int) -> tuple[float, float, float, float, float]:
    """Wall-clock p50, p99 and max, and the p50 and p99 of the thread's CPU time (what the call itself costs
    when the machine is busy with other work), in milliseconds."""
    for _ in range(min(200, iterations)):
        call()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(iterations):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        call()
        cpu.append((time.thread_time_ns() - start_cpu) / 1e6)
        wall.append((time.perf_counter_ns() - start) / 1e6)
    return (
        _percentile(wall, 0.5),
        _percentile(wall, 0.99),
        max(wall),
        _percentile(cpu, 0.5),
        _percentile(cpu, 0.99),
    )


def _rss_mib(field: str = "VmRSS") -> float:
    """Resident memory in MiB: ``VmRSS`` (all), ``RssAnon`` (private) or ``RssFile`` (mapped files)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})

    # What any router has before it builds a classifier is not the classifier's memory: its modules
    # (numpy among them; the tokenizer is imported only when an embedding loads) and, here, the prompts
    # classified at the end.
    import flotilla.router.app  # noqa: F401
    from flotilla.router import classifying, heap
    from flotilla.router.classifying import datasets, embedding

    prompts = [r["prompt"] for r in datasets.routing_train()]
    rss_before, anon_before, file_before = _rss_mib(), _rss_mib("RssAnon"), _rss_mib("RssFile")

    started = time.perf_counter()
    classifier = classifying.build_classifier(classifying.preset_config(["code", "math", "writing"], "chat"))
    build_ms = (time.perf_counter() - started) * 1000
    heap.release_freed()  # as the router does after each build (flotilla/router/heap.py)
    rss_after = _rss_mib()
    for prompt in prompts:  # touches the memory-mapped token tables as real traffic would
        classifier.classify([{"role": "user", "content": prompt}])
    grown = _rss_mib() - rss_before  # one router's classifier (the second one below is for timing only)
    anon, mapped = _rss_mib("RssAnon") - anon_before, _rss_mib("RssFile") - file_before
    with_summaries = classifying.build_classifier(
        classifying.preset_config(["code", "math", "writing", "summarization"], "chat")
    )
    embedder = embedding.load()
    long_code = CODE_PROMPT + ("\n" + CODE_PROMPT) * 11
    long_plain = PLAIN_PROMPT + (" " + PLAIN_PROMPT) * 11
    conversation = [
        {"role": "user", "content": PLAIN_PROMPT},
        {"role": "assistant", "content": "Here are a few ideas..."},
        {"role": "user", "content": "Thanks. Could you turn that into a short plan for the next month?"},
        {"role": "assistant", "content": "Sure..."},
        {"role": "user", "content": [{"type": "text", "text": CODE_PROMPT}]},
    ]
    cases = [
        (
            "code prompt (first stage decides)",
            CODE_PROMPT,
            lambda: classifier.classify([{"role": "user", "content": CODE_PROMPT}]),
        ),
        (
            "general prompt (second stage runs)",
            PLAIN_PROMPT,
            lambda: classifier.classify([{"role": "user", "content": PLAIN_PROMPT}]),
        ),
        (
            "2,000 tokens (code)",
            long_code,
            lambda: classifier.classify([{"role": "user", "content": long_code}]),
        ),
        (
            "2,000 tokens (general)",
            long_plain,
            lambda: classifier.classify([{"role": "user", "content": long_plain}]),
        ),
        ("3 user turns (history 2)", CODE_PROMPT + PLAIN_PROMPT, lambda: classifier.classify(conversation)),
        (
            "fleet with summarization (rules stage too)",
            PLAIN_PROMPT,
            lambda: with_summaries.classify([{"role": "user", "content": PLAIN_PROMPT}]),
        ),
        ("head features only", PLAIN_PROMPT, lambda: embedder.features(embedder.token_ids(PLAIN_PROMPT))),
        ("full embedding (example similarity)", PLAIN_PROMPT, lambda: embedder.embed(PLAIN_PROMPT)),
    ]
    print(f"classifier build (first, loads the asset): {build_ms:.0f} ms; pinned to CPU {args.cpu}, 1 thread")
    added = rss_after - rss_before
    print(f"resident memory: {rss_before:.0f} MiB before, {rss_after:.0f} MiB after: +{added:.0f} MiB")
    print(f"{args.iterations} timed calls per case after warm-up; results of the slow path:")
    print(classifier.classify([{"role": "user", "content": PLAIN_PROMPT}]))
    print()
    print(f"load average {os.getloadavg()[0]:.1f} (shared cores: compare wall and CPU time)")
    print("| case | tokens | wall p50 ms | wall p99 ms | max ms | CPU p50 ms | CPU p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, text, fn in cases:
        tokens = len(embedder.token_ids(text[:4000] if "2,000" not in name else text))
        p50, p99, worst, cpu50, cpu99 = _time(fn, args.iterations)
        print(f"| {name} | {tokens} | {p50:.3f} | {p99:.3f} | {worst:.3f} | {cpu50:.3f} | {cpu99:.3f} |")
    print(
        f"\nresident memory after classifying {len(prompts)} varied prompts: +{grown:.0f} MiB "
        f"= {grown * 1.048576:.0f} MB (goal <= 150 MB) "
        f"(private +{anon:.0f} MiB, memory-mapped asset pages +{mapped:.0f} MiB, shared and evictable)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
