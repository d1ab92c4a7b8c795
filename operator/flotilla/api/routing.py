"""`spec.fallbacks[]`, `spec.routing` and `spec.router`: cloud safety nets, task routes, the router pods."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from flotilla.api import messages
from flotilla.api.common import (
    MAX_LIST,
    MAX_MAP,
    MAX_SHORT,
    Duration,
    Name,
    Resources,
    SecretKeySelector,
    ShortText,
    SpecModel,
    Toleration,
    cel_rules,
    compiled_patterns,
    object_default,
    parse_duration,
)
from flotilla.api.distillation import TaskDistillationSpec
from flotilla.api.routerconfig import (
    ALL_FALLBACK_REASONS,
    CLASSIFIER_URL_PATTERN,
    MAX_MID_STREAM_SWITCHES,
    SHA256_PATTERN,
    FallbackReason,
    PresetName,
    Price,
    ProviderKind,
    Selection,
    Verifier,
)

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
}
"""The official endpoints: the only base URL of these providers. Any other server is openai-compatible, so
its host is checked against the deployment's allow-lists (docs/security.md) before a key is sent to it."""

BASE_URL_PATTERN = r"^https?://[^/?#@ ]+([/?#].*)?$"
"""http(s), a host, no ``user:password@``. Plain http is refused later unless the operator's settings name
the host (``reconcile/admitting.py`` and the chart's ValidatingAdmissionPolicy): that list is per
deployment, so the CRD cannot hold it."""


class ApiKeyRef(SpecModel):
    """The provider API key, as a Secret reference only: the router gets it as an env var from the Secret;
    Flotilla never reads or copies the value."""

    model_config = cel_rules(("!has(self.value) && has(self.secretKeyRef)", messages.INLINE_API_KEY))

    secret_key_ref: SecretKeySelector | None = None
    """The Secret key holding the API key (required)."""
    value: Annotated[str, Field(max_length=MAX_SHORT)] | None = None
    """Not allowed: listed only so an inline key is rejected with a clear message instead of being silently
    dropped."""

    @model_validator(mode="after")
    def _secret_only(self) -> ApiKeyRef:
        if self.value is not None or self.secret_key_ref is None:
            raise ValueError(messages.INLINE_API_KEY)
        return self


class FallbackSpec(SpecModel):
    """A cloud (or any OpenAI-compatible) model used when the fleet's own models cannot answer."""

    model_config = cel_rules(
        ("self.provider == 'openai-compatible' || has(self.apiKey)", messages.API_KEY_REQUIRED),
        ("self.provider != 'openai-compatible' || has(self.baseURL)", messages.BASE_URL_REQUIRED),
        (f"!has(self.baseURL) || self.baseURL.matches('{BASE_URL_PATTERN}')", messages.BASE_URL_SCHEME),
        ("self.provider == 'openai-compatible' || !has(self.baseURL) || "
         f"(self.provider == 'openai' && self.baseURL == '{DEFAULT_BASE_URLS['openai']}') || "
         f"(self.provider == 'anthropic' && self.baseURL == '{DEFAULT_BASE_URLS['anthropic']}')",
         messages.OFFICIAL_ENDPOINT),
        ("!has(self.timeout) || self.timeout.matches('[1-9]')", messages.FALLBACK_TIMEOUT),
    )  # fmt: skip

    name: Name
    """Fallback name, referenced by spec.routing.tasks[].fallbacks."""
    provider: ProviderKind
    """API shape: openai, anthropic (Messages API) or openai-compatible (any server speaking the OpenAI
    API)."""
    base_url: Annotated[str, Field(max_length=1024)] | None = Field(None, alias="baseURL")
    """API base URL of an openai-compatible server (https; plain http only to hosts the operator's settings
    name). Providers openai and anthropic always use https://api.openai.com/v1 and
    https://api.anthropic.com/v1: they accept no other value."""
    model: Annotated[str, Field(min_length=1, max_length=MAX_SHORT)]
    """The provider's model name, e.g. gpt-4.1-mini or claude-haiku-4-5."""
    api_key: ApiKeyRef | None = None
    """API key as a Secret reference (required for openai and anthropic)."""
    price: Price = Field(default_factory=Price, json_schema_extra=object_default())
    """What a request costs on this provider (USD per million tokens), for cost accounting."""
    timeout: Duration = "60s"
    """Whole-request timeout."""

    @property
    def effective_base_url(self) -> str:
        """The base URL, with the provider default filled in."""
        return self.base_url or DEFAULT_BASE_URLS.get(self.provider, "")

    @model_validator(mode="after")
    def _complete(self) -> FallbackSpec:
        if self.provider != "openai-compatible" and self.api_key is None:
            raise ValueError(messages.API_KEY_REQUIRED)
        if self.provider == "openai-compatible" and self.base_url is None:
            raise ValueError(messages.BASE_URL_REQUIRED)
        if self.base_url is not None and not re.match(BASE_URL_PATTERN, self.base_url):
            raise ValueError(f"{messages.BASE_URL_SCHEME} (got {self.base_url!r})")
        if (
            self.provider != "openai-compatible"
            and self.base_url is not None
            and self.base_url != DEFAULT_BASE_URLS[self.provider]
        ):
            raise ValueError(f"{messages.OFFICIAL_ENDPOINT} (got {self.base_url!r})")
        if parse_duration(self.timeout) <= 0:  # the router refuses a zero timeout
            raise ValueError(f"{messages.FALLBACK_TIMEOUT} (got {self.timeout!r})")
        return self


Phrase = Annotated[str, Field(min_length=1, max_length=1024)]


class TaskMatchSpec(SpecModel):
    """How the router recognises the task: keywords and regular expressions first, then similarity to the
    example prompts."""

    keywords: Annotated[list[Phrase], Field(max_length=256)] = Field(default_factory=list)
    """Case-insensitive words or phrases that indicate the task."""
    patterns: Annotated[list[Phrase], Field(max_length=64)] = Field(default_factory=list)
    """Regular expressions (Python syntax) that indicate the task. Each must compile: the apiserver cannot
    check that, so the operator refuses a fleet with one that does not (Ready=False, reason InvalidSpec,
    and a Warning Event) before any router sees it."""
    examples: Annotated[list[Phrase], Field(max_length=256)] = Field(default_factory=list)
    """Example prompts of the task, compared by embedding similarity."""

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        return compiled_patterns(patterns, messages.INVALID_PATTERN)


class EscalationSpec(SpecModel):
    """Confidence cascade: a fleet model's answer that looks unreliable is not served but escalated to the
    next model or fallback of the task (both answers are priced). Applies to non-streamed requests, and to
    streams when `holdTokens` is set."""

    model_config = cel_rules(
        ("has(self.minMeanLogprob) || has(self.minAgreement) || (has(self.verifiers) && "
         "size(self.verifiers) > 0)", messages.ESCALATION_CRITERION),
    )  # fmt: skip

    min_mean_logprob: Annotated[float, Field(ge=-100, le=0)] | None = None
    """Escalate when the mean logprob of the answer's tokens is below this (e.g. -1.0; the router asks the
    model for logprobs). Unset: not checked."""
    min_agreement: Annotated[float, Field(ge=0, le=1)] | None = None
    """With `testTimeCompute` (select majority): escalate when the share of samples agreeing with the
    chosen final answer is below this (e.g. 0.6). Unset: not checked."""
    verifiers: Annotated[list[Verifier], Field(max_length=4)] = Field(default_factory=list)
    """Checks the answer must pass: json (valid JSON when the request's response_format asks for JSON),
    final-answer (a final answer can be extracted: "Answer: 42", "#### 42", \\boxed{42} or a number),
    complete (not cut off by max_tokens), non-empty."""
    hold_tokens: Annotated[int, Field(ge=0, le=256)] = 0
    """Streams: hold back the first N tokens, check their mean logprob (and, if the stream ends within
    them, the verifiers), then either release them or escalate. 0: streams are never escalated."""

    @model_validator(mode="after")
    def _decides(self) -> EscalationSpec:
        if self.min_mean_logprob is None and self.min_agreement is None and not self.verifiers:
            raise ValueError(messages.ESCALATION_CRITERION)
        return self


class SamplingSpec(SpecModel):
    """Test-time compute: ask the task's fleet model for several answers and serve the one selected (every
    sample is priced). Non-streamed requests only."""

    samples: Annotated[int, Field(ge=1, le=16)] = 3
    """Answers to sample: one request with `n` where the runtime supports it (vllm), else parallel
    requests with different seeds."""
    select: Selection = "majority"
    """majority: the most frequent final answer (numbers normalised: "$1,440.00" = "1440"), ties to the
    higher mean logprob; logprob: the sample with the highest mean token logprob (free text)."""
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7
    """Sampling temperature, unless the request sets one above 0."""


class TaskSpec(SpecModel):
    """A task type and where its requests go, in order: models first, then fallbacks."""

    name: Name
    """Task name, e.g. code, math, writing, chat (also accepted as the request's `model`)."""
    preset: PresetName | None = None
    """Built-in keyword/example preset added to `match` (code, math, writing, summarization, extraction,
    translation, chat); defaults to the task name when it is one."""
    match: TaskMatchSpec = Field(default_factory=TaskMatchSpec, json_schema_extra=object_default())
    """How to recognise the task."""
    models: Annotated[list[Name], Field(max_length=16)] | None = None
    """Fleet models to try, in order. Unset: the models whose `tasks` include this task, in spec order."""
    fallbacks: Annotated[list[Name], Field(max_length=16)] | None = None
    """Fallbacks to try after the models, in order. Unset: every fallback of the fleet; [] for none."""
    escalation: EscalationSpec | None = None
    """Escalate unreliable fleet-model answers to the next in the chain (docs/routing.md, "Escalation")."""
    test_time_compute: SamplingSpec | None = None
    """Sample several answers from the fleet model and serve the best (docs/routing.md, "Test-time
    compute")."""
    mid_stream_failover: bool = True
    """When a streamed answer breaks after it started (connection reset, read timeout, an error event, the
    pod killed), continue the same client stream on the next model or fallback of this task: it is asked
    to continue the partial answer and only its new text is relayed. false: the client gets an error
    event instead (as before)."""
    max_mid_stream_switches: Annotated[int, Field(ge=0, le=MAX_MID_STREAM_SWITCHES)] = 1
    """How many times one stream may switch upstream mid-way (0 turns mid-stream failover off)."""
    distillation: TaskDistillationSpec | None = None
    """Capture this task's answers for distillation (docs/distillation.md); needs `spec.distillation`."""


class ClassifierModelSpec(SpecModel):
    """A trained classifier file (`flotilla classifier train` writes it), fetched by URL and pinned by its
    sha256: the operator and every router replica fetch the same bytes and use them only if they match."""

    model_config = cel_rules(
        (f"self.url.matches('{CLASSIFIER_URL_PATTERN}')", messages.CLASSIFIER_URL),
        (f"self.sha256.matches('{SHA256_PATTERN}')", messages.CLASSIFIER_SHA256),
    )

    url: Annotated[str, Field(min_length=1, max_length=2048)]
    """http(s) URL of the classifier .npz file: any object store, artifact server or in-cluster Service
    (a presigned URL works; credentials in the URL do not)."""
    sha256: Annotated[str, Field(min_length=1, max_length=64)]
    """sha256 of the file (64 lowercase hex digits, as `sha256sum` prints it)."""

    @model_validator(mode="after")
    def _valid(self) -> ClassifierModelSpec:
        if not re.match(CLASSIFIER_URL_PATTERN, self.url):
            raise ValueError(f"{messages.CLASSIFIER_URL} (got {self.url!r})")
        if not re.match(SHA256_PATTERN, self.sha256):
            raise ValueError(messages.CLASSIFIER_SHA256)
        return self


class ClassifierSpec(SpecModel):
    """The router's task classifier."""

    model: ClassifierModelSpec | None = None
    """The fleet's own trained classifier, replacing the packaged one (code, math, writing, general). The
    operator checks it first (ClassifierReady condition); a bad file is rejected with a Warning Event and
    the routers keep the last accepted classifier."""
    log_sample: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Share of classified requests the router logs (prompt sha256, task, probabilities, reason), to see
    misroutes and build your own labelled set; 0 logs none."""
    log_prompts: bool = False
    """Also log the prompt text of the sampled requests (off by default: prompts may hold personal data)."""


class RoutingSpec(SpecModel):
    """Task routing. Without `tasks`, one route per task named in the models' `tasks`."""

    default_task: Name | None = None
    """Task for requests the classifier is not sure about; defaults to chat if that task exists, else the
    first."""
    tasks: Annotated[list[TaskSpec], Field(max_length=MAX_LIST)] = Field(default_factory=list)
    """Task routes, in priority order."""
    fallback_on: Annotated[list[FallbackReason], Field(max_length=len(ALL_FALLBACK_REASONS))] = Field(
        default_factory=lambda: list(ALL_FALLBACK_REASONS),
        json_schema_extra={"default": list(ALL_FALLBACK_REASONS)},
    )
    """Failures that move a request to the next model or fallback: unavailable (no ready pod), error
    (connect error or 5xx), timeout (no first byte in time), overload (over the in-flight cap), cold (the
    model is starting and the cold-start budget ran out)."""
    cold_start_budget: Duration = "2s"
    """How long a request may wait for a model scaled to zero before it falls back."""
    classifier_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Below this classifier confidence the request goes to the default task."""
    classifier: ClassifierSpec = Field(default_factory=ClassifierSpec, json_schema_extra=object_default())
    """Which classifier picks the task (default: the one packaged with the router)."""


class RouterSpec(SpecModel):
    """The fleet's OpenAI-compatible router pods."""

    replicas: Annotated[int, Field(ge=0, le=100)] = 1
    """Router pods."""
    resources: Resources = Field(
        default_factory=lambda: Resources(
            requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "1Gi"}
        ),
        json_schema_extra={
            "default": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
        },
    )
    """CPU and memory of the router container."""
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Type of the router Service."""
    image: ShortText | None = None
    """Router image override; the operator's own image if unset."""
    node_selector: Annotated[dict[str, ShortText], Field(max_length=MAX_MAP)] = Field(default_factory=dict)
    """Node labels the router pods require."""
    tolerations: Annotated[list[Toleration], Field(max_length=MAX_LIST)] = Field(default_factory=list)
    """Tolerations of the router pods."""
