"""``flotilla classifier train``: a task classifier from your own labelled prompts.

    flotilla classifier train --data labelled.jsonl --out DIR

Each input line is ``{"prompt": "…", "task": "…"}`` (other fields ignored); the tasks are the distinct
``task`` values, and ``general`` stands for the fleet's default task. Writes ``DIR/classifier.npz`` (the
versioned asset: weights, tasks, data hash, cross-validated metrics) and ``DIR/classifier.json`` (the same
metadata, readable), and prints what to put in the fleet's ``routing.classifier.model``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flotilla import errors
from flotilla.router.classifying import embedding, training


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = sub.add_parser("train", help="train a classifier asset from labelled JSONL prompts")
    train.add_argument("--data", type=Path, required=True, metavar="FILE", help="labelled prompts (JSONL)")
    train.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    train.add_argument("--embedding", type=Path, metavar="DIR", help="embedding asset (default: packaged)")
    train.add_argument(
        "--c", type=float, default=training.REGULARISATION_C, help="inverse L2 regularisation (default 3)"
    )
    train.add_argument(
        "--offset",
        action="append",
        default=[],
        metavar="TASK=LOGIT",
        help="shift a task's logit (repeatable): route more (positive) or fewer (negative) prompts to it",
    )


def _offsets(values: list[str]) -> dict[str, float]:
    offsets = {}
    for value in values:
        task, _, number = value.partition("=")
        try:
            offsets[task] = float(number)
        except ValueError:
            raise errors.UsageError(f"--offset {value!r}: expected TASK=NUMBER (writing=0.2)") from None
        if not task or not -10 <= offsets[task] <= 10:
            raise errors.UsageError(f"--offset {value!r}: expected TASK=NUMBER with |NUMBER| <= 10")
    return offsets


def run(name: str, args: argparse.Namespace) -> int:
    if not args.c > 0:
        raise errors.UsageError("--c must be positive")
    offsets = _offsets(args.offset)
    rows = training.read_rows(args.data)
    if args.out.exists() and not args.out.is_dir():
        raise errors.UsageError(f"--out {args.out} exists and is not a directory")
    head = training.train(
        rows, embedding.load(args.embedding), c=args.c, source=args.data.name, offsets=offsets
    )
    sha256 = head.save(args.out / "classifier.npz")
    meta = {**head.meta, "sha256": sha256}
    (args.out / "classifier.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    cv = head.meta["cross_validation"]
    print(f"tasks: {', '.join(head.classes)} ({len(rows)} rows)")
    ece = cv["expected_calibration_error"]
    print(f"cross-validated accuracy {cv['accuracy']:.3f}, calibration error {ece:.3f}")
    print(f"wrote {args.out / 'classifier.npz'} (version {head.meta['version']})")
    print(
        "fleet spec: routing.classifier.model: {url: <where you serve classifier.npz>, sha256: "
        + sha256
        + "}"
    )
    return 0
