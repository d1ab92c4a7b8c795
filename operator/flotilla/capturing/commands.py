"""``flotilla traces export``: captured traces -> fine-tuning JSONL (train.jsonl and eval.jsonl).

    flotilla traces export --source DIR|s3://BUCKET/PREFIX [--endpoint-url URL] --task T [--fleet F]
        --format openai-chat|sharegpt [--since 7d|2026-12-01] [--eval-fraction 0.1] -o DIR

S3 credentials come from the usual AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); the endpoint
from ``--endpoint-url`` or AWS_ENDPOINT_URL. Exit 2 on bad arguments, 1 when the source cannot be read or
holds no trace of the task; prints the counts (read, unreadable, selected, duplicates, train, eval).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flotilla import errors
from flotilla.capturing import exporting
from flotilla.capturing.sinks import DirectorySink, S3Sink, Sink, parse_s3_url


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser("export", help="write fine-tuning JSONL from captured traces")
    export.add_argument("--source", required=True, help="a directory (volume sink) or s3://BUCKET/PREFIX")
    export.add_argument("--endpoint-url", help="S3 API URL (default: $AWS_ENDPOINT_URL, else AWS)")
    export.add_argument("--task", required=True, help="the task whose traces to export")
    export.add_argument("--fleet", help="only this fleet's traces (default: all in the source)")
    export.add_argument("--format", required=True, choices=exporting.FORMATS, dest="fmt")
    export.add_argument("--since", help="only traces newer than this: 7d, 12h, or an ISO date/time")
    export.add_argument("--eval-fraction", type=float, default=0.1, help="share held out (default 0.1)")
    export.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="output directory")


def _sink(args: argparse.Namespace) -> tuple[Sink, str]:
    if args.source.startswith("s3://"):
        try:
            bucket, prefix = parse_s3_url(args.source)
        except ValueError as exc:
            raise errors.UsageError(str(exc)) from None
        endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or "https://s3.amazonaws.com"
        access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        return S3Sink(endpoint, bucket, access, secret, os.environ.get("AWS_REGION", "us-east-1")), prefix
    if "://" in args.source:
        raise errors.UsageError(f"--source must be a directory or s3://BUCKET/PREFIX, got {args.source!r}")
    root = Path(args.source)
    if not root.is_dir():
        raise errors.UsageError(f"--source {args.source!r} is not a directory")
    return DirectorySink(root), ""


def _blobs(sink: Sink, prefix: str) -> Iterator[bytes]:
    for key in sink.keys(prefix):
        if key.endswith(".jsonl"):
            yield sink.get(key)


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def run(name: str, args: argparse.Namespace) -> int:
    if not 0 <= args.eval_fraction < 1:
        raise errors.UsageError(f"--eval-fraction must be at least 0 and below 1, got {args.eval_fraction}")
    since = None
    if args.since:
        try:
            since = exporting.parse_since(args.since, datetime.now(UTC))
        except ValueError as exc:
            raise errors.UsageError(str(exc)) from None
    if args.out.exists() and not args.out.is_dir():
        raise errors.UsageError(f"-o {str(args.out)!r} exists and is not a directory")
    sink, prefix = _sink(args)
    counts = exporting.Counts()
    try:
        found = list(exporting.records(_blobs(sink, prefix), counts))
    except errors.FlotillaError:
        raise
    except Exception as exc:  # botocore's and the file system's errors alike: one line, exit 1
        raise errors.FlotillaError(f"cannot read traces from {sink.describe()}: {exc}") from None
    train, held_out = exporting.build(
        found, args.task, args.fmt, args.eval_fraction, counts, fleet=args.fleet, since=since
    )
    if not train and not held_out:
        raise errors.FlotillaError(
            f"no traces of task {args.task!r} in {sink.describe()} ({counts.read} lines read)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "train.jsonl", train)
    _write(args.out / "eval.jsonl", held_out)
    print(json.dumps({"out": str(args.out), **vars(counts)}))
    return 0
