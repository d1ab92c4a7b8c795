"""The validation messages a person sees, shared by the CRD's CEL rules and the pydantic validators.

They are part of the API: the apiserver returns them on `kubectl apply`, `flotilla render` prints them, the
integration tests assert them and docs/reference lists them. Change them only on purpose.
"""

from __future__ import annotations

FLEET_NAME = (
    "metadata.name of a ModelFleet must be at most 30 characters (child object names are built from it)"
)
EMPTY_FLEET = "a fleet needs at least one entry in spec.models or spec.fallbacks"
DUPLICATE_MODEL = "model names must be unique: two entries in spec.models have the same name"
DUPLICATE_FALLBACK = "fallback names must be unique: two entries in spec.fallbacks have the same name"
DUPLICATE_TASK = "task names must be unique: two entries in spec.routing.tasks have the same name"
NAME_CLASH = "a fallback cannot have the same name as a model"
RESERVED_MODEL_NAME = "model name 'router' is reserved for the fleet's router"
ADAPTER_RUNTIME = (
    "adapter needs runtime llamacpp (a LoRA adapter GGUF) or vllm (a PEFT adapter directory, vLLM's LoRA "
    "support)"
)
ADAPTER_FILE = (
    "adapter.uri must name one .gguf file by pvc://, s3://, http(s):// or file:// (llama.cpp loads the "
    "adapter from a local path; hf:// is not fetched for adapters)"
)
ADAPTER_DIRECTORY = (
    "a vllm model's adapter.uri must name a PEFT adapter directory (adapter_config.json and "
    "adapter_model.safetensors) by pvc:// or s3://, not a .gguf file (vLLM loads LoRA adapters in PEFT's "
    "format from a local directory)"
)
UNKNOWN_ROUTE_MODEL = "spec.routing.tasks[].models may only name models defined in spec.models"
UNKNOWN_ROUTE_FALLBACK = "spec.routing.tasks[].fallbacks may only name fallbacks defined in spec.fallbacks"
UNKNOWN_DEFAULT_TASK = "spec.routing.defaultTask must name a task of spec.routing.tasks or of a model's tasks"
REPLICAS_ORDER = "replicas.min must be less than or equal to replicas.max"
HPA_ZERO = (
    "autoscaling.mode hpa cannot scale to zero: set replicas.min to 1 or more "
    "(or use mode builtin or keda, which can)"
)
CPU_TARGET_MODE = "autoscaling.targetCpuUtilization is only used by autoscaling.mode hpa"
SOURCE_SCHEME = "source.uri must start with hf://, pvc://, s3://, http://, https:// or file://"
SOURCE_SHAPE = (
    "source.uri needs a location after the scheme: hf://ORG/REPO, pvc://CLAIM/PATH, s3://BUCKET/KEY, "
    "file:///ABSOLUTE/PATH or a URL"
)
SOURCE_KEY_PAIR = "source.accessKeyID and source.secretAccessKey go together: set both or neither"
SOURCE_KEY_SCHEME = "source.accessKeyID and source.secretAccessKey are only used with s3:// sources"
HF_TOKEN_SCHEME = "source.hfToken is only used with hf:// sources"
INLINE_API_KEY = (
    "apiKey must not contain the key itself: store it in a Secret and reference it with "
    "apiKey.secretKeyRef {name, key}"
)
API_KEY_REQUIRED = "providers openai and anthropic need apiKey.secretKeyRef"
BASE_URL_REQUIRED = "provider openai-compatible needs baseURL"
BASE_URL_SCHEME = "baseURL must be an http:// or https:// URL with a host and no user:password@"
OFFICIAL_ENDPOINT = (
    "providers openai and anthropic always use their official endpoints (https://api.openai.com/v1, "
    "https://api.anthropic.com/v1): leave baseURL unset, or use provider openai-compatible for another server"
)
ENV_SOURCE = "valueFrom needs exactly one of secretKeyRef or configMapKeyRef"
INVALID_PATTERN = "spec.routing.tasks[].match.patterns must be valid Python regular expressions"
INVALID_REDACT_PATTERN = "spec.distillation.redact must be valid Python regular expressions"
OPERATOR_ONLY = frozenset({INVALID_PATTERN, INVALID_REDACT_PATTERN})
"""Messages no CEL rule can enforce (CEL cannot compile a Python regex): the apiserver accepts the fleet, the
operator refuses it (Ready=False, reason InvalidSpec, a Warning Event) before rendering anything."""
FALLBACK_TIMEOUT = "a fallback's timeout must be longer than 0s"
CLASSIFIER_URL = "classifier url must be an http:// or https:// URL with a host and no user:password@"
CLASSIFIER_SHA256 = "classifier sha256 must be the file's sha256: 64 lowercase hex digits (sha256sum FILE)"


def runtime_needs_gpu(runtime: str) -> str:
    """Message for a GPU runtime without a GPU (one per runtime, so it can name the runtime)."""
    return (
        f"runtime {runtime} needs a GPU: set accelerator.gpus to 1 or more (or use runtime llamacpp for CPU)"
    )


def runtime_source(runtime: str, hint: str) -> str:
    """Message for a source the runtime cannot load; ``hint`` says what it can."""
    return f"runtime {runtime} cannot load this source: {hint}"


def runtime_quantization(runtime: str, hint: str) -> str:
    """Message for a quantization the runtime does not understand; ``hint`` lists what it does."""
    return f"quantization for runtime {runtime} must be {hint}"


def unknown_runtime(runtime: str, known: list[str]) -> str:
    """pydantic's message for a runtime name not in the table (the apiserver's enum says the same)."""
    return f"unknown runtime {runtime!r}: supported runtimes are {', '.join(known)}"


DUPLICATE_ACCESS_KEY = (
    "access policy names must be unique: two entries in spec.access.keys or spec.access.jwt.policies have "
    "the same name"
)
ACCESS_EMPTY = "spec.access needs at least one key in keys, or jwt"
JWKS_URL_SCHEME = "jwksURL must be an http:// or https:// URL with a host and no user:password@"
OPEN_EXPOSED_ROUTER = (
    "a router Service of type LoadBalancer or NodePort needs spec.access (API keys or JWT) "
    "(an exposed router without access control lets anyone spend the fleet's cloud keys)"
)
ESCALATION_CRITERION = "escalation needs minMeanLogprob, minAgreement or at least one verifier"
MEMORY_QUANTITY = "memory must be a quantity of bytes such as 1536Mi, 4Gi or 3G"
RESERVED_PACK_NAME = "pack names auto and none are reserved: name spec.packs entries something else"
DUPLICATE_PACK = "pack names must be unique: two entries in spec.packs have the same name"
UNKNOWN_FLEET_PACK = "spec.placement.pack must be auto, none or the name of an entry of spec.packs"
UNKNOWN_MODEL_PACK = "spec.models[].placement.pack must be auto, none or the name of an entry of spec.packs"
SINK_ONE = "spec.distillation.sink needs exactly one of s3 or volume"
SINK_ENDPOINT = "sink s3.endpoint must be an http:// or https:// URL with a host and no user:password@"
SINK_BUCKET = "sink s3.bucket must be an S3 bucket name: 3-63 lowercase letters, digits, dots and dashes"
CAPTURE_WITHOUT_SINK = "spec.routing.tasks[].distillation.capture needs spec.distillation (the sink)"
SHADOW_JUDGE_REQUIRED = "distillation.shadow with score judge needs judge: the name of one of spec.fallbacks"
SHADOW_JUDGE_UNUSED = "distillation.shadow.judge is only used with score judge: set score: judge or drop it"
SHADOW_WITH_TRAIN = (
    "distillation.shadow and distillation.train cannot both be set: with train, each version that trained "
    "successfully is the task's candidate (evaluated as train.shadow says)"
)
SHADOW_UNKNOWN_MODEL = "spec.routing.tasks[].distillation.shadow.model must name an entry of spec.models"
SHADOW_UNKNOWN_JUDGE = "spec.routing.tasks[].distillation.shadow.judge must name an entry of spec.fallbacks"
TRAIN_WITHOUT_SINK = (
    "spec.routing.tasks[].distillation.train needs spec.distillation (the sink the traces are read from and "
    "the adapter is written to)"
)
TRAIN_SHADOW_UNKNOWN_JUDGE = (
    "spec.routing.tasks[].distillation.train.shadow.judge must name an entry of spec.fallbacks"
)
TRAIN_UNKNOWN_BASE = "spec.routing.tasks[].distillation.train.base must name an entry of spec.models"
TRAIN_BASE_RUNTIME = (
    "spec.routing.tasks[].distillation.train.base must be a model with runtime llamacpp and a GGUF file "
    "source (pvc://, s3://, http(s)://, file://; not hf://: the CPU fine-tune reads the base GGUF file) or "
    "with runtime vllm (HF-format weights by hf://, pvc:// or s3://: the GPU fine-tune)"
)
SHADOW_MODEL_ROUTED = (
    "spec.routing.tasks[].distillation.shadow.model must not be one of the task's models: a candidate gets "
    "the task's requests only as mirrors (promotion puts it first)"
)
