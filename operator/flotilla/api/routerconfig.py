"""The routing table the operator renders and the router reads: the one contract between them.

The operator renders a ``RouterConfig`` from a ``ModelFleet`` into the fleet's ConfigMap (key
``router.yaml``); ``flotilla router --config FILE`` loads the same model from the mounted file and reloads it
when the file changes. Both sides import this module, so the format cannot drift.

Field names are camelCase on the wire (like every Kubernetes object) and snake_case in Python.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from flotilla.api import messages

CONFIG_KEY = "router.yaml"
"""The ConfigMap key (and file name in the router pod) that holds the serialised ``RouterConfig``."""

FallbackReason = Literal["unavailable", "error", "timeout", "overload", "cold"]
"""Why a request left its chosen model: no ready endpoint, connect error or 5xx, no first byte in time,
over the in-flight cap, or the model is scaled to zero / still starting."""

ProviderKind = Literal["openai", "anthropic", "openai-compatible"]

ALL_FALLBACK_REASONS: tuple[FallbackReason, ...] = ("unavailable", "error", "timeout", "overload", "cold")

Verifier = Literal["json", "final-answer", "complete", "non-empty"]
"""A check a fleet model's answer must pass or be escalated (``router.answers.failed_verifier``): ``json``
(valid JSON when ``response_format`` asks for JSON), ``final-answer`` (a final answer can be extracted: an
explicit marker such as "Answer: 42" or a number), ``complete`` (not cut off by ``max_tokens``),
``non-empty``."""

Selection = Literal["majority", "logprob"]
"""How test-time compute picks one of its samples: a vote on the final answer, or the highest mean token
logprob."""
MAX_MID_STREAM_SWITCHES = 8
"""Upper bound of a task's ``maxMidStreamSwitches`` (a stream continued more often is better failed)."""

PresetName = Literal["code", "math", "writing", "summarization", "extraction", "translation", "chat"]
"""The router's built-in task presets (``router.presets.PRESETS``; a unit test keeps the two equal)."""


class WireModel(BaseModel):
    """Base for wire models: camelCase aliases, snake_case attributes, unknown keys rejected."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Price(WireModel):
    """US dollars per million tokens."""

    input_per_mtok: float = Field(0.0, ge=0, alias="inputPerMTok", description="USD per 1M input tokens.")
    output_per_mtok: float = Field(0.0, ge=0, alias="outputPerMTok", description="USD per 1M output tokens.")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars for one request's usage."""
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1_000_000


class ServiceRef(WireModel):
    """A Kubernetes Service whose EndpointSlices list the model's pods (used when the router runs in a
    cluster). `port` is the pods' (target) port, as EndpointSlices list it."""

    namespace: str
    name: str
    port: int = Field(8080, ge=1, le=65535)
    path: str = Field(
        "",
        pattern=r"^(/[A-Za-z0-9._-]+)*$",
        description="Appended to each pod's URL: a packed model's `/<model>` on its pack's pods.",
    )


class ModelUpstream(WireModel):
    """One fleet model as the router sees it: where its pods are, what it costs, how hard to push it."""

    name: str = Field(min_length=1, description="Fleet model name; also accepted as the request's `model`.")
    served_model_name: str = Field(min_length=1, description="The `model` value sent to the model server.")
    service: ServiceRef | None = Field(None, description="Discover pods from this Service's EndpointSlices.")
    endpoints: list[str] = Field(
        default_factory=list,
        description="Static base URLs (e.g. http://127.0.0.1:8081) when not discovering.",
    )
    price: Price = Field(default_factory=Price)
    timeout_seconds: float = Field(120.0, gt=0, description="Whole-request timeout.")
    first_byte_timeout_seconds: float = Field(
        30.0, gt=0, description="No response headers within this time counts as `timeout` (falls back)."
    )
    max_in_flight: int = Field(64, ge=1, description="Per-pod cap; over it the request counts as `overload`.")
    scale_from_zero: bool = Field(
        False, description="The model may sit at zero replicas: hold requests (up to the cold-start budget)."
    )
    multiple_choices: bool = Field(
        False, description="The server answers `n` > 1 in one request (test-time compute asks once)."
    )


class ProviderUpstream(WireModel):
    """A cloud fallback provider. The key is read from an env var or a mounted Secret file, never inline."""

    name: str = Field(min_length=1)
    provider: ProviderKind
    base_url: str = Field(alias="baseURL", min_length=1)
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")
    api_key_file: str | None = Field(None, description="File (a mounted Secret key) holding the API key.")
    price: Price = Field(default_factory=Price)
    timeout_seconds: float = Field(60.0, gt=0)


class TaskMatch(WireModel):
    """How the classifier recognises a task: cheap rules first, then semantic similarity to examples."""

    keywords: list[str] = Field(default_factory=list, description="Case-insensitive words or phrases.")
    patterns: list[str] = Field(default_factory=list, description="Python regular expressions.")
    examples: list[str] = Field(default_factory=list, description="Example prompts for embedding similarity.")


class Escalation(WireModel):
    """When a fleet model's answer is not served but escalated to the next upstream in the task's chain."""

    min_mean_logprob: float | None = Field(
        None, ge=-100, le=0, description="Escalate when the answer's mean token logprob is below this."
    )
    min_agreement: float | None = Field(
        None, ge=0, le=1, description="With test-time compute: escalate when fewer samples agree."
    )
    verifiers: list[Verifier] = Field(default_factory=list, max_length=4)
    hold_tokens: int = Field(
        0, ge=0, le=256, description="Streams: hold this many tokens before deciding; 0: streams unchecked."
    )

    @model_validator(mode="after")
    def _decides(self) -> Escalation:
        if self.min_mean_logprob is None and self.min_agreement is None and not self.verifiers:
            raise ValueError(messages.ESCALATION_CRITERION)
        return self


class Sampling(WireModel):
    """Sample a fleet model's answer n times and serve the one selected."""

    samples: int = Field(3, ge=1, le=16, description="Answers asked of the model (all are priced).")
    select: Selection = "majority"
    temperature: float = Field(
        0.7, ge=0, le=2, description="Sampling temperature unless the request sets one above 0."
    )


CaptureSource = Literal["all", "fallbacks", "cloud"]
"""Which answers of a task are captured for distillation: every answer, those served after the task's first
choice failed or was escalated, or those served by a cloud fallback."""


class Capture(WireModel):
    """Record a sample of a task's answers (after redaction) for distillation (``flotilla.capturing``)."""

    sample: float = Field(ge=0, le=1, description="Share of the task's answered requests recorded.")
    source: CaptureSource = Field(
        "all", alias="from", description="all, fallbacks (not the first choice) or cloud (a fallback)."
    )


ShadowScore = Literal["exact-final-answer", "checks", "judge"]
"""How a mirrored answer is compared with the served one: equal final answers (math), the request's own
checks (verifiers), or a yes/no from an LLM judge that is one of the fleet's fallbacks."""


DEFAULT_CHECKS: tuple[Verifier, ...] = ("json", "complete", "non-empty")
"""The checks a candidate must pass with score checks, unless the task names others."""


class Shadow(WireModel):
    """Mirror a share of a task's requests to a candidate model and score its answers (never served)."""

    model: str = Field(min_length=1, description="The candidate: a fleet model the task does not route to.")
    share: float = Field(gt=0, le=1, description="Share of the task's answered requests mirrored.")
    score: ShadowScore = "exact-final-answer"
    judge: str | None = Field(None, description="With score judge: the fallback asked.")
    checks: list[Verifier] = Field(
        default_factory=lambda: list(DEFAULT_CHECKS),
        max_length=4,
        description="With score checks: the verifiers the candidate's answer must pass.",
    )
    max_concurrent: int = Field(
        4, ge=1, le=256, description="Mirrors in flight per router replica; beyond it a mirror is dropped."
    )


class TaskRoute(WireModel):
    """A task type and where its requests go, in order: models first, then fallbacks."""

    name: str = Field(min_length=1)
    preset: str | None = Field(
        None,
        description="Built-in preset (code, math, writing, summarization, extraction, translation, chat) "
        "whose keywords and examples are used in addition to `match`. "
        "Defaults to `name` when it is a preset.",
    )
    match: TaskMatch = Field(default_factory=TaskMatch)
    models: list[str] = Field(default_factory=list)
    fallbacks: list[str] = Field(default_factory=list)
    escalation: Escalation | None = Field(None, description="Escalate low-confidence answers; None: never.")
    test_time_compute: Sampling | None = Field(None, description="Sample n answers; None: one.")
    mid_stream_failover: bool = Field(
        True, description="Continue a stream that broke after it started on the next upstream of the chain."
    )
    max_mid_stream_switches: int = Field(
        1, ge=0, le=MAX_MID_STREAM_SWITCHES, description="Upstream switches one stream may make mid-way."
    )
    capture: Capture | None = Field(None, description="Capture answers for distillation; None: never.")
    shadow: Shadow | None = Field(None, description="Mirror to a candidate model and score it; None: never.")


class CircuitBreakerSettings(WireModel):
    failures: int = Field(5, ge=1, description="Consecutive failures that open the breaker.")
    cooldown_seconds: float = Field(10.0, gt=0, description="Open time before a half-open probe.")


CLASSIFIER_URL_PATTERN = r"^https?://[^/?#@ ]+([/?#].*)?$"
"""An http(s) URL with a host and no ``user:password@`` (credentials do not belong in a fleet spec)."""
SHA256_PATTERN = r"^[0-9a-f]{64}$"
"""A sha256 digest as ``sha256sum`` prints it."""


class ClassifierModel(WireModel):
    """A trained classifier head (one ``.npz`` from ``flotilla classifier train``): fetched from ``url``,
    used only if its sha256 is ``sha256``."""

    url: str = Field(max_length=2048, pattern=CLASSIFIER_URL_PATTERN, description="Where to fetch it.")
    sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of the file, 64 lowercase hex digits.")


class ClassifierSettings(WireModel):
    threshold: float = Field(
        0.5, ge=0, le=1, description="Below this confidence the request goes to the default task."
    )
    history_turns: int = Field(2, ge=0, description="Earlier user turns also considered.")
    model: ClassifierModel | None = Field(
        None, description="The fleet's own trained classifier; None: the one packaged with the router."
    )
    log_sample: float = Field(
        0.0, ge=0, le=1, description="Share of classified requests logged (prompt hash, task, probabilities)."
    )
    log_prompts: bool = Field(False, description="Also log the prompt text of sampled requests.")


class KeyLimitsConfig(WireModel):
    """Per-replica rate limits of one key (None: unlimited)."""

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    concurrent_requests: int | None = Field(None, ge=1)


class PolicyConfig(WireModel):
    """What the callers of one policy may do (an API key, or the JWTs naming it)."""

    name: str = Field(min_length=1, description="Policy name, in metrics and logs.")
    tasks: list[str] = Field(default_factory=list, description="Allowed tasks; empty: all.")
    models: list[str] = Field(default_factory=list, description="Allowed models and fallbacks; empty: all.")
    cloud_fallbacks: bool = False
    limits: KeyLimitsConfig = Field(default_factory=KeyLimitsConfig)
    monthly_budget_usd: float | None = Field(None, ge=0, alias="monthlyBudgetUSD")
    on_budget_exhausted: Literal["downgrade", "reject"] = "downgrade"
    capture: bool = Field(True, description="This policy's requests may be captured for distillation.")


class KeyPolicy(PolicyConfig):
    """One API key as the router sees it: the sha256 of the key (never the key) and its policy."""

    sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 (hex) of the key's UTF-8 bytes.")


class JwtConfig(WireModel):
    """JWT bearer tokens, checked against the identity provider's JWKS (``spec.access.jwt``)."""

    jwks_url: str = Field(alias="jwksURL", pattern=CLASSIFIER_URL_PATTERN, description="JWKS location.")
    issuer: str = Field(min_length=1, description="Required iss claim.")
    audience: str = Field(min_length=1, description="Required aud claim.")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    policy_claim: str = Field("flotilla_policy", min_length=1, description="Claim naming the policy.")
    policies: list[PolicyConfig] = Field(min_length=1, description="Policies tokens may name.")


class AccessConfig(WireModel):
    """Client authentication. Absent from a ``RouterConfig``: the router serves anyone."""

    keys: list[KeyPolicy] = Field(
        default_factory=list, description="Known keys; an empty list refuses every request (401)."
    )
    jwt: JwtConfig | None = Field(None, description="JWT bearer tokens; None: API keys only.")
    spend_file: str | None = Field(
        None,
        description="JSON file with the fleet-wide cloud spend per key that the operator aggregates from "
        "every replica (``flotilla.api.spend``); None: this replica's own spend only.",
    )

    @property
    def policies(self) -> list[PolicyConfig]:
        """Every policy: the keys', then the JWT policies (names are unique across both)."""
        return [*self.keys, *(self.jwt.policies if self.jwt else [])]

    @model_validator(mode="after")
    def _unique(self) -> AccessConfig:
        names = [p.name for p in self.policies]
        hashes = [k.sha256 for k in self.keys]
        if len(set(names)) != len(names) or len(set(hashes)) != len(hashes):
            raise ValueError("access policy names and key hashes must be unique")
        return self


class S3Sink(WireModel):
    """An S3-compatible bucket; the credentials come from env vars (set from a Secret), never inline."""

    endpoint: str = Field(pattern=CLASSIFIER_URL_PATTERN, description="http(s) URL of the S3 API.")
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field("", max_length=512, description="Key prefix of every object written.")
    region: str = Field("us-east-1", min_length=1)
    access_key_env: str | None = Field(None, description="Env var holding the access key id.")
    secret_key_env: str | None = Field(None, description="Env var holding the secret access key.")


class DirectorySink(WireModel):
    """A directory (a mounted PersistentVolumeClaim on a single-node cluster)."""

    path: str = Field(min_length=1)


class CaptureSettings(WireModel):
    """Where captured traces go and how much the router may hold back while the sink is away."""

    redact: list[str] = Field(
        default_factory=list, description="Python regexes removed from traces, besides the built-ins."
    )
    s3: S3Sink | None = None
    directory: DirectorySink | None = None
    spool_dir: str = Field("/var/spool/flotilla", min_length=1, description="Local spool (JSONL segments).")
    spool_max_bytes: int = Field(256 * 2**20, ge=2**16, description="Spool bound; over it new traces drop.")
    queue_size: int = Field(10_000, ge=1, description="In-memory traces waiting for the spool writer.")
    segment_max_bytes: int = Field(4 * 2**20, ge=2**12, description="A segment is sealed at this size...")
    segment_max_seconds: float = Field(10.0, gt=0, description="...or this age, then uploaded.")
    flush_seconds: float = Field(20.0, ge=0, description="On shutdown, how long to keep uploading.")

    @model_validator(mode="after")
    def _one_sink(self) -> CaptureSettings:
        if (self.s3 is None) == (self.directory is None):
            raise ValueError("capture needs exactly one sink: s3 or directory")
        for pattern in self.redact:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{messages.INVALID_PATTERN}: {pattern!r}: {exc}") from None
        return self


class RouterConfig(WireModel):
    """Everything one fleet's router needs. Rendered by the operator, read (and hot-reloaded) by the
    router."""

    fleet: str = Field("local", description="Fleet name, for metrics labels and logs.")
    namespace: str = Field("default")
    default_task: str
    tasks: list[TaskRoute] = Field(min_length=1)
    models: list[ModelUpstream] = Field(default_factory=list)
    fallbacks: list[ProviderUpstream] = Field(default_factory=list)
    fallback_on: list[FallbackReason] = Field(default_factory=lambda: list(ALL_FALLBACK_REASONS))
    cold_start_budget_seconds: float = Field(2.0, ge=0)
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger request bodies get HTTP 413.")
    access: AccessConfig | None = Field(None, description="API keys and their policies; None: open.")
    capture: CaptureSettings | None = Field(
        None, description="Distillation capture sink; None: no task captures (``tasks[].capture`` ignored)."
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> RouterConfig:
        """Fail at load time, not at request time, when a route names something that does not exist."""
        model_names = [m.name for m in self.models]
        provider_names = [f.name for f in self.fallbacks]
        task_names = [t.name for t in self.tasks]
        for kind, names in (("model", model_names), ("fallback", provider_names), ("task", task_names)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"duplicate {kind} names: {', '.join(duplicates)}")
        if self.default_task not in task_names:
            raise ValueError(
                f"defaultTask {self.default_task!r} is not one of the tasks: {', '.join(task_names)}"
            )
        for task in self.tasks:
            for model in task.models:
                if model not in model_names:
                    raise ValueError(f"task {task.name!r} routes to unknown model {model!r}")
            for fallback in task.fallbacks:
                if fallback not in provider_names:
                    raise ValueError(f"task {task.name!r} routes to unknown fallback {fallback!r}")
            shadow = task.shadow
            if shadow is not None and shadow.model not in model_names:
                raise ValueError(f"task {task.name!r} shadows unknown model {shadow.model!r}")
            if shadow is not None and shadow.score == "judge" and shadow.judge not in provider_names:
                raise ValueError(f"task {task.name!r} names unknown judge {shadow.judge!r}")
        return self

    def to_wire(self) -> dict[str, object]:
        """The camelCase dict written into the ConfigMap."""
        return self.model_dump(by_alias=True, mode="json")
