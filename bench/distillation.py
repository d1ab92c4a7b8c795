"""Distillation bench, fine-tune part: a CPU LoRA fine-tune's time and memory, agreement with the teacher.

How it measures: the stand-in provider in ``--teacher`` mode (``#### <answer>`` first, from
../shared/data/math-answers.jsonl) answers ``--train`` prompts over HTTP (``--teacher-tokens`` words each);
``flotilla distill finetune`` trains a LoRA adapter on them in a subprocess (the ``finetune`` extra from
scripts/finetune-deps) and records its load and train seconds and its peak RSS (``ru_maxrss``) in the
manifest; ggml-org's llama-server then answers the last ``--held-out`` prompts of the file (never trained on)
greedily, first without and then with the adapter (``--lora``); with ``--seen N`` also the first N prompts
it was trained on (a service's repeated questions). Agreement is the share of answers in the
teacher's format and the share whose ``#### <number>`` equals the teacher's (exact final answer).
Wall times include whatever else runs on the machine: the load average is printed with the table.

Run: ``PYTHONPATH=operator .venv/bin/python bench/distillation.py [--train 120 --steps 15] [--seen N]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "distilling"))
from distilkit import (
    Teacher,
    answers,
    final_number,
    finetune_deps,
    format_share,
    math_rows,
    run_finetune,
    serve,
    write_pairs,
)
from routerkit import gemma_gguf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--train", type=int, default=120, help="teacher pairs to train on")
    parser.add_argument("--held-out", type=int, default=40, help="prompts to measure agreement on")
    parser.add_argument("--teacher-tokens", type=int, default=12, help="words per teacher answer")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--seen", type=int, default=0,
        help="also measure on the first N trained prompts (traffic that repeats what was captured)",
    )  # fmt: skip
    args = parser.parse_args()
    rows = math_rows()
    if args.train + args.held_out > len(rows):
        parser.error(f"--train + --held-out exceeds the {len(rows)} rows")
    held = rows[-args.held_out :]
    sets = {f"held-out prompts ({args.held_out})": held}
    if args.seen:
        sets[f"trained-on prompts ({min(args.seen, args.train)})"] = rows[: min(args.seen, args.train)]
    with tempfile.TemporaryDirectory(prefix="flotilla-distill-bench-") as tmp:
        work = Path(tmp)
        teacher = Teacher(work)
        try:
            write_pairs(
                work / "train.jsonl", teacher, [r["prompt"] for r in rows[: args.train]], args.teacher_tokens
            )
            write_pairs(work / "eval.jsonl", teacher, [r["prompt"] for r in held[:16]], args.teacher_tokens)
        finally:
            teacher.stop()
        argv = [
            "--data", str(work / "train.jsonl"), "--eval", str(work / "eval.jsonl"),
            "--base", str(gemma_gguf()),
            "--out", str(work / "tuned"), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
        ]  # fmt: skip
        done = run_finetune(argv, finetune_deps())
        if done.returncode != 0:
            raise SystemExit(f"fine-tune failed:\n{done.stderr[-4000:]}")
        manifest = json.loads((work / "tuned" / "manifest.json").read_text())
        results: dict[tuple[str, str], list[str]] = {}
        for label, adapter in (("base", None), ("tuned", work / "tuned" / "adapter.gguf")):
            server = serve(work, adapter, f"llama-{label}")
            try:
                for name, chosen in sets.items():
                    results[(name, label)] = answers(server, [r["prompt"] for r in chosen])
            finally:
                server.stop()
    load = os.getloadavg()
    steps = manifest["steps"]
    print(f"Fine-tune: {manifest['examples']} teacher pairs, {steps} steps x batch {args.batch_size},")
    print(
        f"LoRA rank {manifest['rank']}, on {os.cpu_count()} cores (load average {load[0]:.1f} {load[1]:.1f})"
    )
    print()
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| model load (dequantise GGUF) | {manifest['load_seconds']} s |")
    print(f"| training | {manifest['train_seconds']} s ({manifest['train_seconds'] / steps:.1f} s/step) |")
    print(f"| whole command | {manifest['total_seconds']} s |")
    print(f"| peak RSS | {manifest['peak_rss_bytes'] / 2**30:.2f} GiB |")
    print(f"| answer loss (held-out) | {manifest['loss_before']} -> {manifest['loss_after']} |")
    for name, chosen in sets.items():
        base, tuned = results[(name, "base")], results[(name, "tuned")]
        print()
        print(f"| {name} | base | tuned |")
        print("| --- | --- | --- |")
        print(f"| teacher's format (#### <n>) | {format_share(base):.0%} | {format_share(tuned):.0%} |")
        exact = [
            sum(
                final_number(text) == str(row["answer"]).replace(",", "")
                for text, row in zip(out, chosen, strict=True)
            )
            / len(chosen)
            for out in (base, tuned)
        ]
        print(f"| teacher's final answer | {exact[0]:.0%} | {exact[1]:.0%} |")
        print()
        print(f"e.g. base:  {base[0]!r}\n     tuned: {tuned[0]!r}")


if __name__ == "__main__":
    main()
