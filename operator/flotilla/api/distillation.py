"""`spec.distillation` and `spec.routing.tasks[].distillation`: capture answers to distil into small models.

A task opts in with `distillation.capture` (off by default); the fleet says where the traces go (an
S3-compatible bucket, or a PersistentVolumeClaim on a single-node cluster) and which of its own patterns are
redacted besides the built-ins (emails, phone and card numbers, API keys and tokens: docs/distillation.md).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from flotilla.api import messages
from flotilla.api.common import MAX_SHORT, SecretKeySelector, SpecModel, cel_rules, compiled_patterns
from flotilla.api.routerconfig import CLASSIFIER_URL_PATTERN, CaptureSource

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class CaptureSpec(SpecModel):
    """Which answers of the task the router records (after redaction) for distillation."""

    sample: Annotated[float, Field(ge=0, le=1)]
    """Share of the task's answered requests recorded, e.g. 0.2 (0 records none)."""
    source: CaptureSource = Field("all", alias="from")
    """all: every answer; fallbacks: answers served after the task's first choice failed or was escalated;
    cloud: answers served by one of the fleet's fallbacks (the teacher's answers)."""


class TaskDistillationSpec(SpecModel):
    """Distillation of one task: for now the capture of its answers (fine-tuning comes next)."""

    capture: CaptureSpec | None = None
    """Record a sample of the task's answers into the fleet's `spec.distillation.sink`. Unset: none."""


class S3SinkSpec(SpecModel):
    """An S3-compatible bucket (AWS S3, SeaweedFS, Ceph RGW, MinIO, GCS's XML API...)."""

    model_config = cel_rules(
        (f"self.endpoint.matches('{CLASSIFIER_URL_PATTERN}')", messages.SINK_ENDPOINT),
        (f"self.bucket.matches('{BUCKET_PATTERN}')", messages.SINK_BUCKET),
    )

    endpoint: Annotated[str, Field(max_length=1024)]
    """http(s) URL of the S3 API, e.g. https://s3.eu-west-1.amazonaws.com."""
    bucket: Annotated[str, Field(max_length=63)]
    """Bucket name (it must exist)."""
    prefix: Annotated[str, Field(max_length=512)] = "flotilla-traces/"
    """Key prefix: objects are `<prefix><fleet>/<UTC date>/<replica>-<segment>.jsonl`."""
    region: Annotated[str, Field(min_length=1, max_length=64)] = "us-east-1"
    """Signing region."""
    access_key_id: SecretKeySelector = Field(alias="accessKeyID")
    """The Secret key holding the access key id (the router gets it as env)."""
    secret_access_key: SecretKeySelector
    """The Secret key holding the secret access key."""

    @model_validator(mode="after")
    def _valid(self) -> S3SinkSpec:
        if not re.match(CLASSIFIER_URL_PATTERN, self.endpoint):
            raise ValueError(f"{messages.SINK_ENDPOINT} (got {self.endpoint!r})")
        if not re.match(BUCKET_PATTERN, self.bucket):
            raise ValueError(f"{messages.SINK_BUCKET} (got {self.bucket!r})")
        return self


class VolumeSinkSpec(SpecModel):
    """A PersistentVolumeClaim mounted into the router pods (single-node clusters: ReadWriteOnce is enough
    when the router pods share the node)."""

    claim_name: Annotated[str, Field(min_length=1, max_length=MAX_SHORT)]
    """Name of the PersistentVolumeClaim in the fleet's namespace."""
    sub_path: Annotated[str, Field(max_length=MAX_SHORT)] = ""
    """Directory inside the volume."""


class SinkSpec(SpecModel):
    """Where captured traces are stored: exactly one of s3 or volume."""

    model_config = cel_rules(("has(self.s3) != has(self.volume)", messages.SINK_ONE))

    s3: S3SinkSpec | None = None
    """An S3-compatible bucket."""
    volume: VolumeSinkSpec | None = None
    """A PersistentVolumeClaim."""

    @model_validator(mode="after")
    def _one(self) -> SinkSpec:
        if (self.s3 is None) == (self.volume is None):
            raise ValueError(messages.SINK_ONE)
        return self


Pattern = Annotated[str, Field(min_length=1, max_length=1024)]


class DistillationSpec(SpecModel):
    """The fleet's trace capture: the sink, the spool, and the fleet's own redaction patterns."""

    sink: SinkSpec
    """Where traces go."""
    redact: Annotated[list[Pattern], Field(max_length=64)] = Field(default_factory=list)
    """Regular expressions (Python syntax) whose matches are replaced by [REDACTED] before a trace leaves
    the router, besides the built-ins (emails, phone numbers, card numbers, API keys and tokens). Each must
    compile: the apiserver cannot check that, so the operator refuses a fleet with one that does not
    (Ready=False, reason InvalidSpec, and a Warning Event)."""
    spool_mib: Annotated[int, Field(ge=16, le=65536)] = Field(256, alias="spoolMiB")
    """MiB of local spool of each router pod (an emptyDir of this size): traces wait there while the sink is
    away;
    when it is full, new traces are dropped (flotilla_router_traces_dropped_total{reason="spool_full"})."""

    @field_validator("redact")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        return compiled_patterns(patterns, messages.INVALID_REDACT_PATTERN)
