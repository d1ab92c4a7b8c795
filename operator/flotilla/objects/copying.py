"""`cp` between a local path and s3://BUCKET/KEY, with `aws s3 cp`'s arguments for what Flotilla needs.

Why not the aws CLI itself: awscli 1.x vendors its own 125 MB botocore (trimming it breaks its
customisations) and the aws-cli v2 image is one more third-party image to pull; the flotilla image already
has boto3, whose transfer manager (s3transfer: multipart, parallel parts, retries) does the copying here.
What is written by hand is only the argument handling and the key <-> path mapping, including refusing keys
that would escape the target directory.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from flotilla import errors

PARTIAL = ".partial"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse(text: str) -> S3Location | None:
    """``s3://bucket/key`` -> S3Location; None for a local path; UsageError for another scheme."""
    if not text.startswith("s3://"):
        if "://" in text:
            raise errors.UsageError(f"{text!r}: only s3:// URLs and local paths are supported")
        return None
    bucket, _, key = text[len("s3://") :].partition("/")
    if not bucket:
        raise errors.UsageError(f"{text!r} names no bucket (s3://BUCKET/KEY)")
    return S3Location(bucket, key)


def relative_path(key: str, prefix: str) -> PurePosixPath:
    """Where the object ``key`` found under ``prefix`` goes below the target directory; UsageError for a key
    that would land outside it (``..``, an absolute path), which a bucket's writer could otherwise use to
    overwrite files in the pod."""
    rest = PurePosixPath(key[len(prefix) :].lstrip("/"))
    if not rest.parts or rest.is_absolute() or ".." in rest.parts:
        raise errors.FlotillaError(f"refusing object key {key!r}: it would be written outside the target")
    return rest


def download(client: Any, source: S3Location, target: Path) -> list[Path]:
    """One object to ``target`` (a file, or a directory to put it in), written atomically."""
    if not source.key or source.key.endswith("/"):
        raise errors.UsageError(f"{source} names a prefix, not an object: add --recursive")
    if target.is_dir() or str(target).endswith("/"):
        target = target / posixpath.basename(source.key)
    _fetch(client, source, target)
    return [target]


def download_prefix(client: Any, source: S3Location, target: Path) -> list[Path]:
    """Every object under the prefix, to the same relative paths below ``target``; an empty prefix is an
    error (a model directory that downloads nothing must not start a server on an empty volume)."""
    prefix = source.key if not source.key or source.key.endswith("/") else source.key + "/"
    written = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            key = str(item["Key"])
            if key.endswith("/"):  # a "folder" marker some tools write
                continue
            path = target / relative_path(key, prefix)
            _fetch(client, S3Location(source.bucket, key), path)
            written.append(path)
    if not written:
        raise errors.FlotillaError(f"no objects under s3://{source.bucket}/{prefix}")
    return written


def upload(client: Any, source: Path, target: S3Location) -> list[str]:
    """One file to ``target`` (a key, or a prefix ending in / to put it under)."""
    if not source.is_file():
        raise errors.UsageError(f"{str(source)!r} is not a file (a directory needs --recursive)")
    key = target.key + source.name if not target.key or target.key.endswith("/") else target.key
    client.upload_file(str(source), target.bucket, key)
    return [key]


def upload_tree(client: Any, source: Path, target: S3Location) -> list[str]:
    """Every file below the directory ``source``, keyed by its relative path under the prefix."""
    if not source.is_dir():
        raise errors.UsageError(f"{str(source)!r} is not a directory")
    prefix = target.key if not target.key or target.key.endswith("/") else target.key + "/"
    keys = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        key = prefix + path.relative_to(source).as_posix()
        client.upload_file(str(path), target.bucket, key)
        keys.append(key)
    if not keys:
        raise errors.FlotillaError(f"{str(source)!r} holds no files")
    return keys


def _fetch(client: Any, source: S3Location, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PARTIAL)
    try:
        client.download_file(source.bucket, source.key, str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
