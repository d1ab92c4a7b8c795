"""`spec.models[]`: one small model, where its weights come from, which runtime serves it, how it scales."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from flotilla.api import capabilities, messages
from flotilla.api.common import (
    MAX_LIST,
    MAX_MAP,
    MAX_SHORT,
    Duration,
    EnvVar,
    Name,
    Resources,
    SecretKeySelector,
    ShortText,
    SpecModel,
    Text,
    Toleration,
    cel_rules,
    object_default,
)
from flotilla.api.placement import Placement
from flotilla.api.routerconfig import Price

SOURCE_SCHEME_RE = r"^(hf|pvc|s3|http|https|file)://"
SOURCE_SHAPE_RE = (
    r"^(hf://[^/@]+/[^/@]+(@.+)?|pvc://[a-z0-9][-a-z0-9.]*(/.*)?|s3://[^/]+/.+|https?://[^/]+.*|file:///.+)$"
)

GGUF_FILE_RE = r"(?i)[.]gguf([?].*)?$"
"""A URI naming a .gguf file (llama.cpp's adapters)."""
ADAPTER_DIRECTORY_RE = r"^(pvc|s3)://"
"""Where a vllm model's PEFT adapter directory may come from (mounted, or copied by the init container)."""


class SourceKeyRef(SpecModel):
    """A Secret key handed to the runtime as an environment variable."""

    secret_key_ref: SecretKeySelector
    """The Secret key holding the token."""


class ModelSource(SpecModel):
    """Where the weights come from. The runtime turns each scheme into the right mechanism: the server pulls
    hf:// itself, pvc:// is mounted read-only, s3:// and http(s):// are downloaded by an init container,
    file:// names a path already inside the server image (weights baked into `image`)."""

    model_config = cel_rules(
        (f"self.uri.matches('{SOURCE_SCHEME_RE}')", messages.SOURCE_SCHEME),
        (f"self.uri.matches('{SOURCE_SHAPE_RE}')", messages.SOURCE_SHAPE),
        ("!has(self.hfToken) || self.uri.startsWith('hf://')", messages.HF_TOKEN_SCHEME),
        ("has(self.accessKeyID) == has(self.secretAccessKey)", messages.SOURCE_KEY_PAIR),
        ("!has(self.accessKeyID) || self.uri.startsWith('s3://')", messages.SOURCE_KEY_SCHEME),
    )

    uri: Annotated[str, Field(min_length=1, max_length=1024)]
    """hf://ORG/REPO[@REVISION], pvc://CLAIM/PATH, s3://BUCKET/KEY, http(s)://HOST/PATH or
    file:///PATH/IN/IMAGE (llamacpp: a .gguf file)."""
    hf_token: SourceKeyRef | None = None
    """Hugging Face token for gated or private hf:// repositories (exposed to the server as HF_TOKEN)."""
    credentials_secret: ShortText | None = None
    """Secret whose keys become env of the download init container (e.g. AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY)."""
    endpoint: ShortText | None = None
    """S3-compatible endpoint URL for s3:// sources outside AWS (e.g. MinIO)."""
    access_key_id: SecretKeySelector | None = Field(None, alias="accessKeyID")
    """s3:// only: the Secret key holding the access key id (as in spec.distillation.sink.s3), for a Secret
    whose keys are not named AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (credentialsSecret's way)."""
    secret_access_key: SecretKeySelector | None = None
    """s3:// only, with accessKeyID: the Secret key holding the secret access key."""

    @property
    def scheme(self) -> str:
        """`hf`, `pvc`, `s3`, `http` or `https`."""
        return self.uri.split("://", 1)[0]

    @property
    def location(self) -> str:
        """Everything after `scheme://`."""
        return self.uri.split("://", 1)[1]

    @model_validator(mode="after")
    def _valid_uri(self) -> ModelSource:
        if not re.match(SOURCE_SCHEME_RE, self.uri):
            raise ValueError(f"{messages.SOURCE_SCHEME} (got {self.uri!r})")
        if not re.match(SOURCE_SHAPE_RE, self.uri):
            raise ValueError(f"{messages.SOURCE_SHAPE} (got {self.uri!r})")
        if self.hf_token is not None and self.scheme != "hf":
            raise ValueError(messages.HF_TOKEN_SCHEME)
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(messages.SOURCE_KEY_PAIR)
        if self.access_key_id is not None and self.scheme != "s3":
            raise ValueError(messages.SOURCE_KEY_SCHEME)
        return self


class Accelerator(SpecModel):
    """GPUs for each replica: becomes an nvidia.com/gpu limit, a toleration of the nvidia.com/gpu taint and,
    with a product, a node selector on nvidia.com/gpu.product."""

    gpus: Annotated[int, Field(ge=0, le=16)] = 1
    """GPUs per replica (nvidia.com/gpu limit); more than 1 shards the model (vLLM tensor parallelism)."""
    product: ShortText | None = None
    """GPU product label value, e.g. NVIDIA-L4 or NVIDIA-A100-SXM4-80GB (node selector
    nvidia.com/gpu.product)."""


class Replicas(SpecModel):
    """How many pods serve the model. Without an autoscaler the model runs `min` replicas."""

    model_config = cel_rules(("!has(self.max) || self.min <= self.max", messages.REPLICAS_ORDER))

    min: Annotated[int, Field(ge=0, le=1000)] = 1
    """Lowest replica count; 0 parks the model (requests go to fallbacks or wait for a cold start)."""
    max: Annotated[int, Field(ge=1, le=1000)] | None = None
    """Highest replica count an autoscaler may reach; defaults to `min`."""

    @property
    def upper(self) -> int:
        """`max`, or `min` when no max is set."""
        return self.max if self.max is not None else self.min

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.max is not None and self.min > self.max:
            raise ValueError(f"{messages.REPLICAS_ORDER} (got min {self.min}, max {self.max})")
        return self


AutoscalingMode = Literal["builtin", "hpa", "keda", "none"]


class Autoscaling(SpecModel):
    """How replicas follow load between replicas.min and replicas.max (only when min < max)."""

    model_config = cel_rules(
        ("!has(self.targetCpuUtilization) || self.mode == 'hpa'", messages.CPU_TARGET_MODE),
    )

    mode: AutoscalingMode = "builtin"
    """builtin: the operator scales on the router's in-flight + queued requests (no metrics adapter; can
    scale to zero); hpa: an autoscaling/v2 HorizontalPodAutoscaler on a Pods metric (needs a custom-metrics
    adapter; not to zero); keda: a KEDA ScaledObject on the router's gauges (needs KEDA and Prometheus; can
    scale to zero); none: fixed at replicas.min (kubectl scale is reverted)."""
    target_in_flight: Annotated[int, Field(ge=1, le=10000)] = 8
    """Concurrent requests (in flight + queued) per replica the autoscaler aims for."""
    target_cpu_utilization: Annotated[int, Field(ge=1, le=100)] | None = None
    """mode hpa only: also scale on average CPU utilisation (percent of requests), useful for llamacpp
    models."""
    window: Duration = "30s"
    """builtin: load is averaged over this long before it is turned into replicas (keda: polling
    interval)."""
    scale_up_delay: Duration = "0s"
    """builtin and keda: a higher replica count must be asked for this long before it is applied (0s: at
    once). Scaling from zero on a held request never waits."""
    scale_down_delay: Duration = "300s"
    """Load must stay low this long before replicas are removed (e.g. 300s, 5m); at zero load with
    replicas.min 0 the model then parks at zero."""

    @model_validator(mode="after")
    def _cpu_target_for_hpa(self) -> Autoscaling:
        if self.target_cpu_utilization is not None and self.mode != "hpa":
            raise ValueError(messages.CPU_TARGET_MODE)
        return self


def _runtime_rules() -> list[tuple[str, str]]:
    """CEL rules generated from the runtime table, so a new runtime brings its own checks."""
    rules: list[tuple[str, str]] = []
    for caps in capabilities.CAPABILITIES.values():
        this = f"self.runtime != '{caps.name}'"
        if caps.gpu == "required":
            rules.append(
                (f"{this} || (has(self.accelerator) && self.accelerator.gpus >= 1)", caps.gpu_message())
            )
        scheme_ok = f"self.source.uri.matches('^({'|'.join(caps.schemes)})://')"
        if caps.file_suffix:
            suffix = re.escape(caps.file_suffix).replace("\\", "\\\\")
            is_file = f"self.source.uri.matches('(?i){suffix}([?].*)?$')"
            scheme_ok += f" && (self.source.uri.startsWith('hf://') || {is_file})"
        rules.append((f"{this} || ({scheme_ok})", caps.source_message()))
        rules.append(
            (
                f"{this} || !has(self.quantization) || "
                f"self.quantization.matches('{caps.quantization_pattern}')",
                caps.quantization_message(),
            )
        )
    return rules


class ModelSpec(SpecModel):
    """One model of the fleet: its weights, runtime, hardware, scaling, price and the tasks it serves."""

    model_config = cel_rules(
        ("self.name != 'router'", messages.RESERVED_MODEL_NAME),
        (
            "!has(self.autoscaling) || self.autoscaling.mode != 'hpa' || !has(self.replicas) || "
            "self.replicas.min >= 1",
            messages.HPA_ZERO,
        ),
        *_runtime_rules(),
        (
            "!has(self.adapter) || self.runtime == 'llamacpp' || self.runtime == 'vllm'",
            messages.ADAPTER_RUNTIME,
        ),
        (
            "!has(self.adapter) || self.runtime != 'llamacpp' || (!self.adapter.uri.startsWith('hf://') && "
            f"self.adapter.uri.matches('{GGUF_FILE_RE}'))",
            messages.ADAPTER_FILE,
        ),
        (
            "!has(self.adapter) || self.runtime != 'vllm' || "
            f"(self.adapter.uri.matches('{ADAPTER_DIRECTORY_RE}') && "
            f"!self.adapter.uri.matches('{GGUF_FILE_RE}'))",
            messages.ADAPTER_DIRECTORY,
        ),
    )

    name: Name
    """Model name (DNS label, at most 32 characters): names its Deployment and Service and is accepted as the
    request's `model` by the router."""
    source: ModelSource
    """Where the weights come from."""
    adapter: ModelSource | None = None
    """A LoRA adapter served on top of `source`, e.g. the adapter a distillation training Job wrote to the
    sink. llamacpp: an adapter GGUF file (`llama-server --lora`; fetched like `source`: s3:// and http(s)://
    by an init container, pvc:// mounted read-only, file:// inside the image). vllm: a PEFT adapter
    directory by pvc:// or s3:// (vLLM's LoRA support: `--enable-lora --lora-modules`; the model's name
    reaches the adapter)."""
    runtime: Annotated[str, Field(max_length=32, json_schema_extra={"enum": list(capabilities.CAPABILITIES)})]
    """Serving runtime: vllm (GPU, OpenAI server) or llamacpp (CPU, llama.cpp server; GGUF files)."""
    served_model_name: Annotated[str, Field(min_length=1, max_length=MAX_SHORT)] | None = None
    """Name the model server answers to (its `model` field); defaults to the model name."""
    quantization: Annotated[str, Field(max_length=16)] | None = None
    """vllm: awq, gptq or fp8 (passed as --quantization). llamacpp: a GGUF type such as Q4_K_M, used to pick
    the file of an hf:// repository."""
    accelerator: Accelerator | None = None
    """GPUs per replica; leave out for CPU serving."""
    resources: Resources = Field(default_factory=Resources, json_schema_extra=object_default())
    """CPU and memory requests/limits of the model server container."""
    replicas: Replicas = Field(default_factory=Replicas, json_schema_extra=object_default())
    """Replica bounds."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, json_schema_extra=object_default())
    """How replicas follow load."""
    tasks: Annotated[list[Name], Field(min_length=1, max_length=16)] = Field(
        default_factory=lambda: ["chat"], json_schema_extra={"default": ["chat"]}
    )
    """Task types this model serves (e.g. code, math, chat); routes without an explicit model list use
    them."""
    price: Price = Field(default_factory=Price, json_schema_extra=object_default())
    """What a request costs on this model, for cost accounting (USD per million tokens)."""
    max_in_flight: Annotated[int, Field(ge=1, le=10000)] = 64
    """Concurrent requests the router sends one replica; beyond it a request counts as `overload` (falls
    back)."""
    max_context_length: Annotated[int, Field(ge=256, le=1_048_576)] | None = None
    """Context window in tokens (vLLM --max-model-len, llama.cpp --ctx-size); the runtime default if unset."""
    image: ShortText | None = None
    """Container image override; the operator's default image for the runtime if unset."""
    args: Annotated[list[Text], Field(max_length=64)] = Field(default_factory=list)
    """Extra arguments appended to the model server's command line."""
    env: Annotated[list[EnvVar], Field(max_length=64)] = Field(default_factory=list)
    """Extra environment variables of the model server container (override Flotilla's)."""
    node_selector: Annotated[dict[str, ShortText], Field(max_length=MAX_MAP)] = Field(default_factory=dict)
    """Extra node labels the pods require."""
    tolerations: Annotated[list[Toleration], Field(max_length=MAX_LIST)] = Field(default_factory=list)
    """Extra tolerations of the pods."""
    placement: Placement = Field(default_factory=Placement, json_schema_extra=object_default())
    """Whether the model may share a pod with other small models (memory-budget packing: one pack pod
    serves them all; see docs/packing.md)."""

    @property
    def caps(self) -> capabilities.RuntimeCapabilities:
        """The runtime's entry in the capability table."""
        return capabilities.CAPABILITIES[self.runtime]

    @property
    def gpus(self) -> int:
        """GPUs per replica (0 without an accelerator)."""
        return self.accelerator.gpus if self.accelerator is not None else 0

    @property
    def autoscaled(self) -> bool:
        """True when an autoscaler (builtin, HPA or KEDA), not the spec, owns the replica count."""
        return self.autoscaling.mode != "none" and self.replicas.min < self.replicas.upper

    @property
    def train_format(self) -> Literal["gguf", "hf"] | None:
        """What a distillation fine-tune of this model reads: its GGUF file (llamacpp, not hf://: CPU LoRA)
        or its HF-format weights (vllm, not file://: GPU LoRA); None when it cannot be a `train.base`."""
        if self.runtime == "llamacpp" and self.source.scheme != "hf":
            return "gguf"
        if self.runtime == "vllm" and self.source.scheme != "file":
            return "hf"
        return None

    @property
    def model_name(self) -> str:
        """The name the model server answers to."""
        return self.served_model_name or self.name

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        if value not in capabilities.CAPABILITIES:
            raise ValueError(messages.unknown_runtime(value, list(capabilities.CAPABILITIES)))
        return value

    @model_validator(mode="after")
    def _runtime_accepts(self) -> ModelSpec:
        caps = self.caps
        if self.name == "router":
            raise ValueError(messages.RESERVED_MODEL_NAME)
        if caps.gpu == "required" and self.gpus < 1:
            raise ValueError(caps.gpu_message())
        if not caps.accepts_source(self.source.scheme, self.source.location):
            raise ValueError(f"{caps.source_message()} (got {self.source.uri!r})")
        if self.quantization is not None and not caps.accepts_quantization(self.quantization):
            raise ValueError(f"{caps.quantization_message()} (got {self.quantization!r})")
        if self.autoscaling.mode == "hpa" and self.replicas.min < 1:
            raise ValueError(messages.HPA_ZERO)
        if self.adapter is not None:
            self._check_adapter(self.adapter.uri)
        return self

    def _check_adapter(self, uri: str) -> None:
        gguf = re.search(GGUF_FILE_RE, uri) is not None
        if self.runtime == "llamacpp":
            if uri.startswith("hf://") or not gguf:
                raise ValueError(f"{messages.ADAPTER_FILE} (got {uri!r})")
        elif self.runtime == "vllm":
            if not re.match(ADAPTER_DIRECTORY_RE, uri) or gguf:
                raise ValueError(f"{messages.ADAPTER_DIRECTORY} (got {uri!r})")
        else:
            raise ValueError(messages.ADAPTER_RUNTIME)
