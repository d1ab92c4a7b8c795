"""One way to build an S3 client, for every S3-compatible server Flotilla talks to (sinks, weights, adapters).

boto3, because botocore's SigV4 signing, retries and endpoint handling are what S3-compatible servers test
against; path-style addressing, because it works without wildcard DNS (SeaweedFS, MinIO, Ceph RGW).
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_REGION = "us-east-1"


def s3_client(
    endpoint: str | None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
    timeout: float = 10.0,
    attempts: int = 2,
) -> Any:
    """A boto3 S3 client (Any: boto3 has no type hints). Keys unset: boto3's own lookup (env, files, role)."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region or os.environ.get("AWS_REGION") or DEFAULT_REGION,
        s3={"addressing_style": "path"},
        connect_timeout=min(timeout, 3.0),
        read_timeout=timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )
