"""``flotilla classify``: classify JSONL prompts from stdin, for evaluating routing offline.

    flotilla classify --config router.yaml < prompts.jsonl
    flotilla classify --tasks code,math,writing --default chat < prompts.jsonl

Each input line is ``{"prompt": "…"}`` or ``{"messages": [...]}`` (other fields are ignored); each output
line is ``{"task", "score", "reason", "probabilities", "micros"}``, in input order, flushed per line:
``score`` is the calibrated probability of the chosen task and ``probabilities`` every task's (empty when
rules decided). Blank lines are skipped.
A line that is not such an object stops the run: the lines before it are already written, the error names
the line number on stderr and the exit code is 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from flotilla import errors
from flotilla.api import routerconfig
from flotilla.router.classifying import classifiers, configs, heads


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, metavar="FILE", help="router config (YAML or JSON)")
    source.add_argument(
        "--tasks", metavar="LIST", help="comma-separated built-in presets, e.g. code,math,writing"
    )
    parser.add_argument("--default", default="chat", metavar="TASK", help="default task with --tasks (chat)")
    parser.add_argument("--threshold", type=float, metavar="X", help="override classifier.threshold (0-1)")
    parser.add_argument("--embeddings", type=Path, metavar="DIR", help="embedding asset (default: packaged)")
    parser.add_argument(
        "--classifier", type=Path, metavar="FILE", help="trained head, classifier.npz (default: packaged)"
    )
    parser.add_argument("--no-embeddings", action="store_true", help="classify by rules only")


def load_config(path: Path) -> routerconfig.RouterConfig:
    """The router's own config loader; its errors are the user's to fix here (exit code 2)."""
    from flotilla.router import snapshots  # the data plane's loader: one reading of the file format

    try:
        return snapshots.load_config(path)
    except errors.ConfigError as exc:
        raise errors.UsageError(str(exc)) from None


def _config(args: argparse.Namespace) -> routerconfig.RouterConfig:
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise errors.UsageError("--threshold must be between 0 and 1")
    if args.config is not None:
        config = load_config(args.config)
        if args.threshold is not None:
            settings = config.classifier.model_copy(update={"threshold": args.threshold})
            config = config.model_copy(update={"classifier": settings})
        return config
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise errors.UsageError("--tasks needs at least one preset name")
    return configs.preset_config(tasks, args.default, args.threshold)


def parse_line(raw: bytes | str, number: int) -> list[Mapping[str, Any]]:
    """The chat messages of one input line, or a UsageError naming the line."""
    try:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise errors.UsageError(f"line {number}: not valid UTF-8 (byte {exc.start + 1})") from None
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise errors.UsageError(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(item, dict):
        raise errors.UsageError(f"line {number}: expected a JSON object, got {type(item).__name__}")
    if "messages" in item:
        messages = item["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise errors.UsageError(f'line {number}: "messages" must be a list of message objects')
        for message in messages:
            content = message.get("content")
            if content is not None and not isinstance(content, str | list):
                raise errors.UsageError(
                    f'line {number}: a message\'s "content" must be a string or a list of parts'
                )
        return messages
    if "prompt" in item:
        if not isinstance(item["prompt"], str):
            raise errors.UsageError(f'line {number}: "prompt" must be a string')
        return [{"role": "user", "content": item["prompt"]}]
    raise errors.UsageError(f'line {number}: needs a "prompt" string or a "messages" list')


def classify_stream(classifier: classifiers.Classifier, lines: Iterable[bytes | str], out: TextIO) -> int:
    """Classify each non-blank line of ``lines`` into ``out``; returns the number of lines classified."""
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        messages = parse_line(line, number)
        start = time.perf_counter_ns()
        result = classifier.classify(messages)
        micros = (time.perf_counter_ns() - start) // 1000
        record = {
            "task": result.task,
            "score": round(result.score, 4),
            "reason": result.reason,
            "probabilities": dict(result.probabilities),
            "micros": micros,
        }
        out.write(json.dumps(record) + "\n")
        out.flush()
        count += 1
    return count


def run(name: str, args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        head = heads.load(args.classifier) if args.classifier else None
        if head is not None:
            heads.check_covers(head, [t.name for t in config.tasks], config.default_task)
        classifier = classifiers.build_classifier(
            config, asset=args.embeddings, head=head, use_embeddings=not args.no_embeddings
        )
    except errors.ConfigError as exc:  # an unknown preset, a bad pattern or asset: the user's to fix
        raise errors.UsageError(str(exc)) from None
    try:
        # Bytes, decoded per line, so invalid UTF-8 is reported with its line number.
        classify_stream(classifier, sys.stdin.buffer, sys.stdout)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        sys.stdout = None  # no flush at exit into the closed pipe
        return 0
    return 0
