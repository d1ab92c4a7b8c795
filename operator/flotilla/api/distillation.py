"""`spec.distillation` and `spec.routing.tasks[].distillation`: capture answers to distil into small models.

A task opts in with `distillation.capture` (off by default); the fleet says where the traces go (an
S3-compatible bucket, or a PersistentVolumeClaim on a single-node cluster) and which of its own patterns are
redacted besides the built-ins (emails, phone and card numbers, API keys and tokens: docs/distillation.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from flotilla.api import messages
from flotilla.api.common import (
    MAX_SHORT,
    Name,
    Resources,
    SecretKeySelector,
    SpecModel,
    cel_rules,
    compiled_patterns,
    object_default,
)
from flotilla.api.routerconfig import (
    CLASSIFIER_URL_PATTERN,
    DEFAULT_CHECKS,
    CaptureSource,
    ShadowScore,
    Verifier,
)

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
LORA_RANK = 16
"""Rank of the LoRA adapters a training Job trains (`flotilla distill finetune --rank` default), and so
vLLM's `--max-lora-rank` when it serves one."""


class CaptureSpec(SpecModel):
    """Which answers of the task the router records (after redaction) for distillation."""

    sample: Annotated[float, Field(ge=0, le=1)]
    """Share of the task's answered requests recorded, e.g. 0.2 (0 records none)."""
    source: CaptureSource = Field("all", alias="from")
    """all: every answer; fallbacks: answers served after the task's first choice failed or was escalated;
    cloud: answers served by one of the fleet's fallbacks (the teacher's answers)."""


class ShadowSettings(SpecModel):
    """How a candidate is evaluated in the shadow of the served answers and then promoted or rolled back
    (docs/distillation.md, "Shadow evaluation and promotion")."""

    model_config = cel_rules(
        # has(): the apiserver checks the rules on the `{}` default of train.shadow before defaulting it
        ("!has(self.score) || self.score != 'judge' || has(self.judge)", messages.SHADOW_JUDGE_REQUIRED),
        ("!has(self.judge) || (has(self.score) && self.score == 'judge')", messages.SHADOW_JUDGE_UNUSED),
    )

    share: Annotated[float, Field(gt=0, le=1)] = 0.2
    """Share of the task's answered requests mirrored to the candidate (after the client has its answer)."""
    requests: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    """Scored requests after which the candidate is promoted or rolled back."""
    promote_at: Annotated[float, Field(ge=0, le=1)] = 0.8
    """Promote when the agreement (agreed / scored) reaches this; roll back otherwise. Rolled back early
    once even agreement on every remaining request could not reach it."""
    score: ShadowScore = "exact-final-answer"
    """exact-final-answer: the final answers ("#### 42", \\boxed{42}, the last number) are equal;
    checks: the candidate's answer passes `checks`; judge: the fallback `judge` says the answers agree."""
    judge: Name | None = None
    """With score judge: the fallback (spec.fallbacks) asked whether the answers agree (it is priced)."""
    checks: Annotated[list[Verifier], Field(max_length=4)] = Field(
        default_factory=lambda: list(DEFAULT_CHECKS),
        json_schema_extra={"default": list(DEFAULT_CHECKS)},
    )
    """With score checks: the verifiers the candidate must pass (json when the request asks for JSON,
    final-answer, complete, non-empty); a request whose served answer fails one is not scored."""
    max_concurrent: Annotated[int, Field(ge=1, le=256)] = 4
    """Mirrors in flight per router pod; a request beyond it is not mirrored (counted as dropped)."""

    @model_validator(mode="after")
    def _judge(self) -> ShadowSettings:
        if self.score == "judge" and self.judge is None:
            raise ValueError(messages.SHADOW_JUDGE_REQUIRED)
        if self.score != "judge" and self.judge is not None:
            raise ValueError(messages.SHADOW_JUDGE_UNUSED)
        return self


class ShadowSpec(ShadowSettings):
    """A candidate model for the task, evaluated in the shadow of the served answers and then promoted or
    rolled back (docs/distillation.md, "Shadow evaluation and promotion")."""

    model: Name
    """The candidate: a fleet model (spec.models) that is not among the task's models. The router sends it
    the task's requests only as mirrors; its answers are never returned."""


class TrainWhen(SpecModel):
    """When the operator starts a training Job for the task."""

    traces: Annotated[int, Field(ge=1, le=100_000_000)]
    """Traces of the task captured (status.traces[].captured) at which the operator creates the training Job
    of adapter version 1, e.g. 500; version N+1 starts once version N finished and another `traces` were
    captured since it started (docs/distillation.md, "Training Job")."""


class TrainSpec(SpecModel):
    """A fine-tune of a fleet model on the task's captured traces, run as a Kubernetes Job that exports the
    traces from the sink, fine-tunes, and writes the adapter and its manifest back to the sink
    (docs/distillation.md, "Training Job")."""

    base: Name
    """The fleet model (spec.models) fine-tuned: runtime llamacpp with a GGUF file source (CPU LoRA, an
    adapter GGUF) or runtime vllm with HF-format weights by hf://, pvc:// or s3:// (GPU LoRA with peft and
    trl, a PEFT adapter directory served with vLLM's LoRA support)."""
    when: TrainWhen
    """The trigger."""
    method: Literal["lora"] = "lora"
    """lora: a LoRA adapter (rank 16): for a llamacpp base trained on CPU with torch + peft and converted to
    an adapter GGUF; for a vllm base trained on the base's GPUs with trl's SFTTrainer and peft."""
    steps: Annotated[int, Field(ge=1, le=100_000)] = 200
    """Optimizer steps (batch 4): about 1.8 s each for Gemma 3 270M on 2 CPU cores."""
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """Image of the training container: it needs the `flotilla` command with the finetune extra (torch,
    peft, trl). Unset: for a llamacpp base the operator's default (the router image, which lacks the extra:
    docs/distillation.md); for a vllm base FLOTILLA_FINETUNE_GPU_IMAGE (CUDA torch)."""
    resources: Resources | None = None
    """Requests and limits of the fine-tune container. Unset: for a llamacpp base requests cpu 1 and memory
    4Gi, limit memory 5Gi (peak RSS 3.6-4.1 GiB for Gemma 3 270M; no CPU limit: torch uses the idle cores);
    for a vllm base the base model's resources, its GPUs always requested (nvidia.com/gpu)."""
    shadow: ShadowSettings = Field(default_factory=ShadowSettings, json_schema_extra=object_default())
    """How each version that trained successfully is evaluated as the task's candidate: the operator adds it
    to the fleet as the model `<base>-<task>-v<N>` (the base with the adapter) and mirrors the task's
    requests to it; promoted, it becomes the task's first model (docs/distillation.md, "From a trained
    version to the task's first model")."""


class TaskDistillationSpec(SpecModel):
    """Distillation of one task: the capture of its answers and the shadow evaluation of a candidate."""

    model_config = cel_rules(("!has(self.shadow) || !has(self.train)", messages.SHADOW_WITH_TRAIN))

    capture: CaptureSpec | None = None
    """Record a sample of the task's answers into the fleet's `spec.distillation.sink`. Unset: none."""
    shadow: ShadowSpec | None = None
    """Mirror a share of the task's requests to a candidate model, score its answers against the served
    ones, and promote it (first model of the task) or roll it back. Unset: no candidate."""
    train: TrainSpec | None = None
    """Fine-tune a fleet model on the task's captured traces once there are enough: the operator creates
    the Job, reports it in status.training, and makes each version that trained successfully the task's
    candidate (train.shadow). Unset: never. Not together with `shadow`."""

    @model_validator(mode="after")
    def _one_candidate(self) -> TaskDistillationSpec:
        if self.shadow is not None and self.train is not None:
            raise ValueError(messages.SHADOW_WITH_TRAIN)
        return self


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
