"""``flotilla objects cp``: copy between a local path and an S3-compatible store (what the init containers
that fetch s3:// weights and adapters run, and the training Job's publish step).

    flotilla objects cp SOURCE TARGET [--recursive] [--endpoint-url URL]

One side is s3://BUCKET/KEY, the other a local path, as with ``aws s3 cp``. Credentials come from the usual
AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION); the endpoint from ``--endpoint-url``
or AWS_ENDPOINT_URL. Exit 2 on bad arguments, 1 when the store refuses or cannot be reached.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from flotilla import errors
from flotilla.objects import clients, copying

ATTEMPTS = 5
"""botocore's standard retry mode, per request: a store that restarts while a pod starts is waited for."""


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    cp = sub.add_parser("cp", help="copy a file or a prefix between a local path and s3://BUCKET/KEY")
    cp.add_argument("source", help="s3://BUCKET/KEY or a local path")
    cp.add_argument("target", help="a local path or s3://BUCKET/KEY")
    cp.add_argument("--recursive", action="store_true", help="copy every object under a prefix / a directory")
    cp.add_argument("--endpoint-url", help="S3 API URL (default: $AWS_ENDPOINT_URL, else AWS)")


def run(name: str, args: argparse.Namespace) -> int:
    source, target = copying.parse(args.source), copying.parse(args.target)
    if (source is None) == (target is None):
        raise errors.UsageError("exactly one of SOURCE and TARGET must be an s3:// URL")
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    client = clients.s3_client(endpoint, timeout=60.0, attempts=ATTEMPTS)
    try:
        if source is not None:
            local = Path(args.target)
            copied = [str(p) for p in (copying.download_prefix if args.recursive else copying.download)(
                client, source, local)]  # fmt: skip
        else:
            assert target is not None
            local = Path(args.source)
            copied = (copying.upload_tree if args.recursive else copying.upload)(client, local, target)
    except errors.FlotillaError:
        raise
    except Exception as exc:  # botocore's errors: one line naming the object and the store, no traceback
        where = f" at {endpoint}" if endpoint else ""
        raise errors.FlotillaError(f"{args.source} -> {args.target}{where}: {_reason(exc)}") from None
    print(f"copied {len(copied)} file(s): {args.source} -> {args.target}")
    return 0


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{code}: {error.get('Message') or type(exc).__name__}"
    return str(exc) or type(exc).__name__
