"""Where traces are stored: an S3-compatible bucket or a directory. Blocking calls, run in a worker thread.

S3 goes through boto3 (botocore's SigV4 signing, retries and endpoint handling are what every S3-compatible
server is tested against; the router calls it from ``asyncio.to_thread`` a few times a minute, so an async
client such as aiobotocore would add a pinned botocore range without making anything faster).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from flotilla.objects import clients


class Sink(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``; return only once the store acknowledged it (raise otherwise)."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every stored key under ``prefix``."""

    def get(self, key: str) -> bytes: ...

    def describe(self) -> str: ...


class DirectorySink:
    """Objects as files under ``root`` (a PersistentVolumeClaim), written atomically and fsynced."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def keys(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root} is not a directory")
        for path in sorted(self.root.rglob("*.jsonl")):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                yield key

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def describe(self) -> str:
        return str(self.root)


class S3Sink:
    """A bucket on any S3-compatible server (path-style addressing: works without wildcard DNS)."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
        timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        # two attempts per request: the uploader retries with its own backoff
        self._client: Any = clients.s3_client(endpoint, access_key, secret_key, region, timeout, attempts=2)

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/x-ndjson")

    def keys(self, prefix: str = "") -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield str(item["Key"])

    def get(self, key: str) -> bytes:
        body: bytes = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def describe(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint}"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://BUCKET[/PREFIX] URL: {url!r}")
    return parts.netloc, parts.path.lstrip("/")
