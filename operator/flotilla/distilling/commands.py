"""``flotilla distill finetune``: teacher pairs (openai-chat JSONL) + a GGUF base -> a LoRA adapter GGUF.

    flotilla distill finetune --data train.jsonl --base model.gguf --out DIR [--eval eval.jsonl]
        [--method lora] [--steps 30 | --epochs 1.5] [--batch-size 4] [--learning-rate 1e-3] [--rank 16]

Writes ``DIR/adapter.gguf`` (load it with ``llama-server --lora`` next to the unchanged base) and
``DIR/manifest.json`` (base and data sha256, method, steps, loss before/after, time, peak memory). Exit 2 on
bad input (a missing file, a line that is not an openai-chat row: named with its line number), 1 when the
fine-tune itself fails (the ``finetune`` extra missing, a base llama.cpp or transformers cannot load).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from flotilla import errors
from flotilla.distilling import examples, manifests

METHODS = ("lora",)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    tune = sub.add_parser("finetune", help="fine-tune a GGUF model on teacher answers (CPU, LoRA)")
    tune.add_argument(
        "--data", type=Path, required=True, help="openai-chat JSONL (traces export train.jsonl)"
    )
    tune.add_argument("--eval", type=Path, help="held-out openai-chat JSONL for loss before/after")
    tune.add_argument("--base", type=Path, required=True, help="the base model GGUF (any quantisation)")
    tune.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    tune.add_argument("--method", choices=METHODS, default="lora")
    length = tune.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, default=30, help="optimizer steps (default 30)")
    length.add_argument("--epochs", type=_positive_float, help="passes over the data (instead of --steps)")
    tune.add_argument("--batch-size", type=_positive_int, default=4)
    tune.add_argument("--learning-rate", type=_positive_float, default=1e-3)
    tune.add_argument("--rank", type=_positive_int, default=16)
    tune.add_argument("--alpha", type=_positive_float, default=32.0)
    tune.add_argument("--max-tokens", type=_positive_int, default=384, help="per example (default 384)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--threads", type=_positive_int, help="torch threads (default: all cores)")


def _check_base(path: Path) -> None:
    if not path.is_file():
        raise errors.UsageError(f"--base {path}: no such file")
    with path.open("rb") as data:
        if data.read(4) != b"GGUF":
            raise errors.UsageError(f"--base {path}: not a GGUF file")


def run(name: str, args: argparse.Namespace) -> int:
    found, data_sha = examples.load(args.data)
    held_out = examples.load(args.eval)[0] if args.eval else []
    _check_base(args.base)
    if args.out.exists() and not args.out.is_dir():
        raise errors.UsageError(f"--out {args.out}: exists and is not a directory")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from flotilla.distilling import adapters, tuning  # the heavy part only once the input is known good

    settings = tuning.Settings(
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        rank=args.rank,
        alpha=args.alpha,
        max_tokens=args.max_tokens,
        seed=args.seed,
        threads=args.threads,
    )
    started = time.monotonic()
    result = tuning.finetune(found, args.base, settings, held_out)
    args.out.mkdir(parents=True, exist_ok=True)
    adapter = args.out / "adapter.gguf"
    try:
        arch = adapters.architecture(args.base)
    except ValueError as exc:
        raise errors.FlotillaError(str(exc)) from None
    adapters.write(adapter, arch, settings.alpha, result.lora_tensors, name=f"flotilla-lora-{data_sha[:12]}")
    manifest = manifests.Manifest(
        method=args.method,
        base=str(args.base),
        base_sha256=adapters.sha256(args.base),
        data=str(args.data),
        data_sha256=data_sha,
        examples=result.examples,
        steps=result.steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        rank=settings.rank,
        alpha=settings.alpha,
        template=settings.template,
        loss_before=round(result.loss_before, 4),
        loss_after=round(result.loss_after, 4),
        loss_on="eval" if held_out else "train",
        load_seconds=round(result.load_seconds, 1),
        train_seconds=round(result.train_seconds, 1),
        total_seconds=round(time.monotonic() - started, 1),
        peak_rss_bytes=result.peak_rss_bytes,
        adapter="adapter.gguf",
        adapter_sha256=adapters.sha256(adapter),
    )
    manifests.write(args.out / "manifest.json", manifest)
    print(json.dumps({"out": str(args.out), **manifests.summary(manifest)}))
    return 0
