"""``flotilla distill finetune``: teacher pairs (openai-chat JSONL) + a base model -> a LoRA adapter.

    flotilla distill finetune --data train.jsonl --base BASE --out DIR [--eval eval.jsonl]
        [--method lora] [--steps 30 | --epochs 1.5] [--batch-size 4] [--learning-rate 1e-3] [--rank 16]

The base says which path: a GGUF file (a llamacpp model) is fine-tuned on CPU and the adapter written as
``DIR/adapter.gguf`` (``llama-server --lora`` next to the unchanged base); an HF-format model (a directory
with ``config.json``, or ``hf://ORG/REPO[@REVISION]``, a vllm model's weights) is fine-tuned with trl and
peft (on the GPU when there is one) and the adapter written as a PEFT directory (``DIR/adapter_config.json``,
``DIR/adapter_model.safetensors``: vLLM's ``--lora-modules``). Both write ``DIR/manifest.json`` (base and data
sha256, method, steps, loss before/after, time, peak memory). Exit 2 on bad input (a missing file, a line that
is not an openai-chat row: named with its line number), 1 when the fine-tune itself fails (the ``finetune``
extra missing, a base llama.cpp or transformers cannot load).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from flotilla import errors
from flotilla.api.distillation import LORA_RANK
from flotilla.distilling import examples, manifests

if TYPE_CHECKING:
    from flotilla.distilling.tuning import Settings, Trained

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
    tune = sub.add_parser("finetune", help="fine-tune a GGUF or HF-format model on teacher answers (LoRA)")
    tune.add_argument(
        "--data", type=Path, required=True, help="openai-chat JSONL (traces export train.jsonl)"
    )
    tune.add_argument("--eval", type=Path, help="held-out openai-chat JSONL for loss before/after")
    tune.add_argument(
        "--base",
        required=True,
        help="the base model: a GGUF file (any quantisation), an HF-format directory, or hf://ORG/REPO[@REV]",
    )
    tune.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    tune.add_argument("--method", choices=METHODS, default="lora")
    length = tune.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, default=30, help="optimizer steps (default 30)")
    length.add_argument("--epochs", type=_positive_float, help="passes over the data (instead of --steps)")
    tune.add_argument("--batch-size", type=_positive_int, default=4)
    tune.add_argument("--learning-rate", type=_positive_float, default=1e-3)
    tune.add_argument("--rank", type=_positive_int, default=LORA_RANK)
    tune.add_argument("--alpha", type=_positive_float, default=32.0)
    tune.add_argument("--max-tokens", type=_positive_int, default=384, help="per example (default 384)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--threads", type=_positive_int, help="torch threads (default: all cores)")


def _base_kind(base: str) -> str:
    """``gguf`` or ``hf`` (UsageError when the base is neither)."""
    if base.startswith("hf://"):
        if "/" not in base.removeprefix("hf://").partition("@")[0]:
            raise errors.UsageError(f"--base {base}: expected hf://ORG/REPO[@REVISION]")
        return "hf"
    path = Path(base)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise errors.UsageError(f"--base {base}: a directory without config.json (not an HF model)")
        return "hf"
    if not path.is_file():
        raise errors.UsageError(f"--base {base}: no such file or directory")
    with path.open("rb") as data:
        if data.read(4) != b"GGUF":
            raise errors.UsageError(f"--base {base}: not a GGUF file nor an HF-format model directory")
    return "gguf"


def run(name: str, args: argparse.Namespace) -> int:
    found, data_sha = examples.load(args.data)
    held_out = examples.load(args.eval)[0] if args.eval else []
    kind = _base_kind(args.base)
    if args.out.exists() and not args.out.is_dir():
        raise errors.UsageError(f"--out {args.out}: exists and is not a directory")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from flotilla.distilling import tuning  # the heavy part only once the input is known good

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
    if kind == "hf":
        return _run_hf(args, found, data_sha, held_out, settings)
    from flotilla.distilling import adapters

    started = time.monotonic()
    base = Path(args.base)
    result = tuning.finetune(found, base, settings, held_out)
    args.out.mkdir(parents=True, exist_ok=True)
    adapter = args.out / "adapter.gguf"
    try:
        arch = adapters.architecture(base)
    except ValueError as exc:
        raise errors.FlotillaError(str(exc)) from None
    adapters.write(adapter, arch, settings.alpha, result.lora_tensors, name=f"flotilla-lora-{data_sha[:12]}")
    return _publish(
        args,
        settings,
        result,
        data_sha,
        bool(held_out),
        started,
        base_sha256=adapters.sha256(base),
        template=settings.template,
        adapter=adapter,
    )


def _run_hf(
    args: argparse.Namespace,
    found: list[examples.Example],
    data_sha: str,
    held_out: list[examples.Example],
    settings: Settings,
) -> int:
    """The HF-format path: a PEFT adapter directory in ``--out`` (vLLM's LoRA format) and the manifest."""
    from flotilla.distilling import hftuning

    started = time.monotonic()
    result = hftuning.finetune(found, args.base, args.out, settings, held_out)
    return _publish(
        args,
        settings,
        result,
        data_sha,
        bool(held_out),
        started,
        base_sha256=result.base_sha256,
        template=result.template,
        adapter=args.out / hftuning.ADAPTER_WEIGHTS,
    )


def _publish(
    args: argparse.Namespace,
    settings: Settings,
    result: Trained,
    data_sha: str,
    held_out: bool,
    started: float,
    *,
    base_sha256: str,
    template: str,
    adapter: Path,
) -> int:
    """Write either path's manifest (inputs, settings, losses, costs, the adapter file) beside the adapter and
    print its summary; the command's exit code."""
    from flotilla.distilling import adapters

    manifest = manifests.Manifest(
        method=args.method,
        base=args.base,
        base_sha256=base_sha256,
        data=str(args.data),
        data_sha256=data_sha,
        examples=result.examples,
        steps=result.steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        rank=settings.rank,
        alpha=settings.alpha,
        template=template,
        loss_before=round(result.loss_before, 4),
        loss_after=round(result.loss_after, 4),
        loss_on="eval" if held_out else "train",
        load_seconds=round(result.load_seconds, 1),
        train_seconds=round(result.train_seconds, 1),
        total_seconds=round(time.monotonic() - started, 1),
        peak_rss_bytes=result.peak_rss_bytes,
        adapter=adapter.name,
        adapter_sha256=adapters.sha256(adapter),
    )
    manifests.write(args.out / "manifest.json", manifest)
    print(json.dumps({"out": str(args.out), **manifests.summary(manifest)}))
    return 0
