"""Each invalid spec is rejected by the pydantic models with the same message the CRD's CEL rule gives."""

from __future__ import annotations

from typing import Any

import pytest
from fleets import BASE, fleet

from flotilla import errors
from flotilla.api import messages
from flotilla.api.fleet import ModelFleet

CODER = "spec__models__0"
POCKET = "spec__models__1"
FRONTIER = "spec__fallbacks__0"

ACCESS_KEY = {"name": "web", "secretRef": {"name": "keys", "key": "web"}}
JWT = {"jwksURL": "https://idp.example/jwks", "issuer": "https://idp.example", "audience": "f",
       "policies": [{"name": "team"}]}  # fmt: skip
SINK = {"sink": {"volume": {"claimName": "traces"}}}
TRAIN = {"base": "pocket", "when": {"traces": 500}}
INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "model placed in an unknown pack": (
        {f"{POCKET}__placement": {"pack": "tiny"}},
        messages.UNKNOWN_MODEL_PACK,
    ),
    "fleet placement in an unknown pack": (
        {"spec__placement": {"pack": "tiny"}},
        messages.UNKNOWN_FLEET_PACK,
    ),
    "pack named auto": ({"spec__packs": [{"name": "auto"}]}, messages.RESERVED_PACK_NAME),
    "duplicate pack names": ({"spec__packs": [{"name": "a"}, {"name": "a"}]}, messages.DUPLICATE_PACK),
    "memory hint not a quantity": (
        {f"{POCKET}__placement": {"pack": "auto", "memory": "2 GB"}},
        messages.MEMORY_QUANTITY,
    ),
    "pack memory not a quantity": (
        {"spec__packs": [{"name": "a", "memory": "lots"}]},
        messages.MEMORY_QUANTITY,
    ),
    "duplicate model names": ({f"{POCKET}__name": "coder"}, messages.DUPLICATE_MODEL),
    "shadow judge score without a judge": (
        {
            "spec__routing__tasks": [
                {
                    "name": "code",
                    "models": ["coder"],
                    "distillation": {"shadow": {"model": "pocket", "score": "judge"}},
                }
            ]
        },
        messages.SHADOW_JUDGE_REQUIRED,
    ),
    "shadow judge without score judge": (
        {
            "spec__routing__tasks": [
                {
                    "name": "code",
                    "models": ["coder"],
                    "distillation": {"shadow": {"model": "pocket", "judge": "frontier"}},
                }
            ]
        },
        messages.SHADOW_JUDGE_UNUSED,
    ),
    "shadow candidate already routed": (
        {
            "spec__routing__tasks": [
                {
                    "name": "code",
                    "models": ["coder", "pocket"],
                    "distillation": {"shadow": {"model": "pocket"}},
                }
            ]
        },
        messages.SHADOW_MODEL_ROUTED,
    ),
    "train without a sink": (
        {"spec__routing__tasks": [{"name": "code", "distillation": {"train": TRAIN}}]},
        messages.TRAIN_WITHOUT_SINK,
    ),
    "train base not a fleet model": (
        {
            "spec__distillation": SINK,
            "spec__routing__tasks": [{"name": "code", "distillation": {"train": {**TRAIN, "base": "nope"}}}],
        },
        messages.TRAIN_UNKNOWN_BASE,
    ),
    "train base a vllm model baked into its image": (
        {
            "spec__distillation": SINK,
            f"{CODER}__source": {"uri": "file:///models/qwen"},
            "spec__routing__tasks": [{"name": "code", "distillation": {"train": {**TRAIN, "base": "coder"}}}],
        },
        messages.TRAIN_BASE_RUNTIME,
    ),
    "train base pulled from hf": (
        {
            "spec__distillation": SINK,
            f"{POCKET}__source": {"uri": "hf://ggml-org/gemma-3-270m-GGUF"},
            "spec__routing__tasks": [{"name": "code", "distillation": {"train": TRAIN}}],
        },
        messages.TRAIN_BASE_RUNTIME,
    ),
    "train method not lora": (
        {
            "spec__distillation": SINK,
            "spec__routing__tasks": [
                {"name": "code", "distillation": {"train": {**TRAIN, "method": "full"}}}
            ],
        },
        "Input should be 'lora'",
    ),
    "train at zero traces": (
        {
            "spec__distillation": SINK,
            "spec__routing__tasks": [
                {"name": "code", "distillation": {"train": {**TRAIN, "when": {"traces": 0}}}}
            ],
        },
        "greater than or equal to 1",
    ),
    "shadow and train together": (
        {
            "spec__distillation": SINK,
            "spec__routing__tasks": [
                {
                    "name": "code",
                    "models": ["pocket"],
                    "distillation": {"train": TRAIN, "shadow": {"model": "coder"}},
                }
            ],
        },
        messages.SHADOW_WITH_TRAIN,
    ),
    "train shadow judge not a fallback": (
        {
            "spec__distillation": SINK,
            "spec__routing__tasks": [
                {
                    "name": "code",
                    "distillation": {"train": {**TRAIN, "shadow": {"score": "judge", "judge": "nope"}}},
                }
            ],
        },
        messages.TRAIN_SHADOW_UNKNOWN_JUDGE,
    ),
    "source keys on a pvc source": (
        {
            f"{POCKET}__source": {
                "uri": "pvc://models/g.gguf",
                "accessKeyID": {"name": "s", "key": "id"},
                "secretAccessKey": {"name": "s", "key": "secret"},
            }
        },
        messages.SOURCE_KEY_SCHEME,
    ),
    "source access key without its secret": (
        {f"{POCKET}__source": {"uri": "s3://b/g.gguf", "accessKeyID": {"name": "s", "key": "id"}}},
        messages.SOURCE_KEY_PAIR,
    ),
    "replicas min > max": ({f"{CODER}__replicas": {"min": 3, "max": 2}}, messages.REPLICAS_ORDER),
    "vllm without accelerator": ({f"{CODER}__accelerator": None}, messages.runtime_needs_gpu("vllm")),
    "vllm with zero gpus": ({f"{CODER}__accelerator": {"gpus": 0}}, messages.runtime_needs_gpu("vllm")),
    "LoadBalancer router without access": (
        {"spec__router": {"serviceType": "LoadBalancer"}},
        messages.OPEN_EXPOSED_ROUTER,
    ),
    "NodePort router without access": (
        {"spec__router": {"serviceType": "NodePort"}},
        messages.OPEN_EXPOSED_ROUTER,
    ),
    "duplicate access key names": (
        {"spec__access": {"keys": [ACCESS_KEY, ACCESS_KEY]}},
        messages.DUPLICATE_ACCESS_KEY,
    ),
    "access with neither keys nor jwt": ({"spec__access": {}}, messages.ACCESS_EMPTY),
    "access with an empty key list": ({"spec__access": {"keys": []}}, messages.ACCESS_EMPTY),
    "a JWT policy named like a key": (
        {"spec__access": {"keys": [ACCESS_KEY], "jwt": {**JWT, "policies": [{"name": "web"}]}}},
        messages.DUPLICATE_ACCESS_KEY,
    ),
    "duplicate JWT policies": (
        {"spec__access": {"jwt": {**JWT, "policies": [{"name": "t"}, {"name": "t"}]}}},
        messages.DUPLICATE_ACCESS_KEY,
    ),
    "jwksURL not http": (
        {"spec__access": {"jwt": {**JWT, "jwksURL": "file:///jwks"}}},
        messages.JWKS_URL_SCHEME,
    ),
    "shared-secret JWT algorithm": (
        {"spec__access": {"jwt": {**JWT, "algorithms": ["HS256"]}}},
        "Input should be 'RS256'",
    ),
    "route to unknown model": (
        {"spec__routing__tasks__0__models": ["coderr"]},
        messages.UNKNOWN_ROUTE_MODEL,
    ),
    "route to unknown fallback": (
        {"spec__routing__tasks__0__fallbacks": ["gpt"]},
        messages.UNKNOWN_ROUTE_FALLBACK,
    ),
    "inline api key": ({f"{FRONTIER}__apiKey": {"value": "sk-123"}}, messages.INLINE_API_KEY),
    "inline api key beside a ref": (
        {f"{FRONTIER}__apiKey": {"value": "sk-123", "secretKeyRef": {"name": "a", "key": "b"}}},
        messages.INLINE_API_KEY,
    ),
    "empty api key": ({f"{FRONTIER}__apiKey": {}}, messages.INLINE_API_KEY),
    "unknown runtime": (
        {f"{CODER}__runtime": "tgi"},
        "unknown runtime 'tgi': supported runtimes are vllm, llamacpp",
    ),
    "unknown provider": ({f"{FRONTIER}__provider": "gemini"}, "Input should be 'openai', 'anthropic' or"),
    "openai without key": ({f"{FRONTIER}__apiKey": None}, messages.API_KEY_REQUIRED),
    "openai-compatible without baseURL": (
        {f"{FRONTIER}__provider": "openai-compatible", f"{FRONTIER}__apiKey": None},
        messages.BASE_URL_REQUIRED,
    ),
    "baseURL not http": ({f"{FRONTIER}__baseURL": "ftp://x"}, messages.BASE_URL_SCHEME),
    "baseURL with credentials": (
        {f"{FRONTIER}__provider": "openai-compatible", f"{FRONTIER}__baseURL": "https://u:p@x.example/v1"},
        messages.BASE_URL_SCHEME,
    ),
    "openai elsewhere than its official endpoint": (
        {f"{FRONTIER}__baseURL": "https://collector.example/v1"},
        messages.OFFICIAL_ENDPOINT,
    ),
    "openai over plain http": (
        {f"{FRONTIER}__baseURL": "http://api.openai.com/v1"},
        messages.OFFICIAL_ENDPOINT,
    ),
    "anthropic elsewhere than its official endpoint": (
        {f"{FRONTIER}__provider": "anthropic", f"{FRONTIER}__baseURL": "https://api.openai.com/v1"},
        messages.OFFICIAL_ENDPOINT,
    ),
    "vllm from http": (
        {f"{CODER}__source": {"uri": "https://example.com/model.safetensors"}},
        "runtime vllm cannot load this source",
    ),
    "llamacpp from a non-gguf file": (
        {f"{POCKET}__source": {"uri": "pvc://models/weights.safetensors"}},
        "runtime llamacpp cannot load this source",
    ),
    "unknown scheme": ({f"{POCKET}__source": {"uri": "ftp://host/x.gguf"}}, messages.SOURCE_SCHEME),
    "hf without repo": ({f"{CODER}__source": {"uri": "hf://Qwen"}}, messages.SOURCE_SHAPE),
    "hf token on pvc": (
        {
            f"{POCKET}__source": {
                "uri": "pvc://m/a.gguf",
                "hfToken": {"secretKeyRef": {"name": "h", "key": "t"}},
            }
        },
        messages.HF_TOKEN_SCHEME,
    ),
    "vllm adapter a gguf file": (
        {f"{CODER}__adapter": {"uri": "s3://b/adapter.gguf"}},
        messages.ADAPTER_DIRECTORY,
    ),
    "vllm adapter from hf": ({f"{CODER}__adapter": {"uri": "hf://org/adapter"}}, messages.ADAPTER_DIRECTORY),
    "vllm adapter over http": (
        {f"{CODER}__adapter": {"uri": "https://example.com/adapters/v1/"}},
        messages.ADAPTER_DIRECTORY,
    ),
    "llamacpp adapter a peft directory": (
        {f"{POCKET}__adapter": {"uri": "pvc://traces/adapters/f/math/v1/"}},
        messages.ADAPTER_FILE,
    ),
    "adapter from hf": ({f"{POCKET}__adapter": {"uri": "hf://org/adapter"}}, messages.ADAPTER_FILE),
    "adapter not a gguf": (
        {f"{POCKET}__adapter": {"uri": "s3://b/adapter_model.safetensors"}},
        messages.ADAPTER_FILE,
    ),
    "vllm with GGUF quant": ({f"{CODER}__quantization": "Q4_K_M"}, messages.runtime_quantization("vllm", "")),
    "llamacpp with awq": ({f"{POCKET}__quantization": "awq"}, messages.runtime_quantization("llamacpp", "")),
    "hpa at zero": (
        {f"{CODER}__replicas": {"min": 0, "max": 2}, f"{CODER}__autoscaling": {"mode": "hpa"}},
        messages.HPA_ZERO,
    ),
    "cpu target without hpa": (
        {f"{CODER}__replicas": {"min": 1, "max": 2}, f"{CODER}__autoscaling": {"targetCpuUtilization": 70}},
        messages.CPU_TARGET_MODE,
    ),
    "unknown autoscaling mode": (
        {f"{CODER}__autoscaling": {"mode": "kpa"}},
        "Input should be 'builtin', 'hpa', 'keda' or 'none'",
    ),
    "bad scale-down delay": ({f"{CODER}__autoscaling": {"scaleDownDelay": "5 min"}}, "should match pattern"),
    "model named router": ({f"{POCKET}__name": "router"}, messages.RESERVED_MODEL_NAME),
    "fallback named like a model": ({f"{FRONTIER}__name": "coder", "spec__routing": {}}, messages.NAME_CLASH),
    "duplicate fallbacks": (
        {"spec__fallbacks": [BASE["spec"]["fallbacks"][0], BASE["spec"]["fallbacks"][0]]},
        messages.DUPLICATE_FALLBACK,
    ),
    "duplicate tasks": ({"spec__routing__tasks": [{"name": "a"}, {"name": "a"}]}, messages.DUPLICATE_TASK),
    "unknown default task": ({"spec__routing__defaultTask": "poetry"}, messages.UNKNOWN_DEFAULT_TASK),
    "empty fleet": ({"spec__models": [], "spec__fallbacks": [], "spec__routing": {}}, messages.EMPTY_FLEET),
    "fleet name too long": ({"metadata__name": "a" * 31}, messages.FLEET_NAME),
    "unknown field (typo)": ({f"{CODER}__replica": {"min": 1}}, "Extra inputs are not permitted"),
    "bad duration": ({"spec__routing__coldStartBudget": "2 seconds"}, "String should match pattern"),
    "too many mid-stream switches": (
        {"spec__routing__tasks": [{"name": "code", "maxMidStreamSwitches": 9}]},
        "less than or equal to 8",
    ),
    "model name not a DNS label": ({f"{POCKET}__name": "Pocket_1"}, "String should match pattern"),
    "classifier sha256 in upper case": (
        {"spec__routing__classifier": {"model": {"url": "https://a.example/c.npz", "sha256": "AB" * 32}}},
        messages.CLASSIFIER_SHA256,
    ),
    "classifier sha256 too short": (
        {"spec__routing__classifier": {"model": {"url": "https://a.example/c.npz", "sha256": "ab" * 31}}},
        messages.CLASSIFIER_SHA256,
    ),
    "classifier url not http": (
        {"spec__routing__classifier": {"model": {"url": "s3://bucket/c.npz", "sha256": "ab" * 32}}},
        messages.CLASSIFIER_URL,
    ),
    "classifier url with credentials": (
        {"spec__routing__classifier": {"model": {"url": "https://u:p@a.example/c.npz", "sha256": "ab" * 32}}},
        messages.CLASSIFIER_URL,
    ),
    "env valueFrom with two sources": (
        {
            f"{POCKET}__env": [
                {
                    "name": "X",
                    "valueFrom": {
                        "secretKeyRef": {"name": "a", "key": "b"},
                        "configMapKeyRef": {"name": "a", "key": "b"},
                    },
                }
            ]
        },
        messages.ENV_SOURCE,
    ),
}


def test_base_fleet_is_valid() -> None:
    parsed = ModelFleet.from_body(BASE)
    assert [m.name for m in parsed.spec.models] == ["coder", "pocket"]
    assert parsed.namespace == "ai"


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_spec_is_rejected_with_its_message(case: str) -> None:
    changes, message = INVALID[case]
    with pytest.raises(errors.InvalidSpecError) as caught:
        ModelFleet.from_body(fleet(**changes))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)  # one line for the CLI and for Events


VALID_TRAINING: dict[str, dict[str, Any]] = {
    "vllm base from hf": {},
    "vllm base on a claim": {f"{CODER}__source": {"uri": "pvc://models/qwen2.5-1.5b"}},
    "vllm base in a bucket": {f"{CODER}__source": {"uri": "s3://weights/qwen2.5-1.5b/"}},
}


@pytest.mark.parametrize("case", list(VALID_TRAINING), ids=list(VALID_TRAINING))
def test_a_vllm_model_may_be_the_train_base(case: str) -> None:
    changes = {
        "spec__distillation": SINK,
        "spec__routing__tasks": [{"name": "code", "distillation": {"train": {**TRAIN, "base": "coder"}}}],
        **VALID_TRAINING[case],
    }
    coder = ModelFleet.from_body(fleet(**changes)).spec.model("coder")
    assert coder.train_format == "hf"


@pytest.mark.parametrize(
    "uri", ["pvc://traces/adapters/f/code/v1/", "s3://sink/flotilla-traces/adapters/f/code/v1/"]
)
def test_a_vllm_model_takes_a_peft_adapter_directory(uri: str) -> None:
    coder = ModelFleet.from_body(fleet(**{f"{CODER}__adapter": {"uri": uri}})).spec.model("coder")
    assert coder.adapter is not None and coder.adapter.uri == uri


def test_official_endpoints_may_be_written_out() -> None:
    written = ModelFleet.from_body(fleet(**{f"{FRONTIER}__baseURL": "https://api.openai.com/v1"}))
    assert written.spec.fallbacks[0].effective_base_url == "https://api.openai.com/v1"


def test_error_names_the_field_path() -> None:
    with pytest.raises(errors.InvalidSpecError, match=r"^spec\.models\[0\]\.replicas: "):
        ModelFleet.from_body(fleet(**{f"{CODER}__replicas": {"min": 3, "max": 2}}))


def test_wrong_kind_is_rejected() -> None:
    with pytest.raises(errors.InvalidSpecError, match=r"expected apiVersion flotilla\.dev/v1alpha1 and kind"):
        ModelFleet.from_body(fleet(kind="Deployment"))


def test_defaults_are_filled() -> None:
    spec = ModelFleet.from_body(BASE).spec
    pocket = spec.model("pocket")
    assert pocket.tasks == ["chat"]
    assert (pocket.replicas.min, pocket.replicas.upper) == (1, 1)
    assert pocket.autoscaling.mode == "builtin"
    assert not pocket.autoscaled  # min == max: nothing to scale
    assert (pocket.autoscaling.window, pocket.autoscaling.scale_up_delay) == ("30s", "0s")
    assert spec.routing.cold_start_budget == "2s"
    assert spec.router.service_type == "ClusterIP"
    assert spec.fallbacks[0].effective_base_url == "https://api.openai.com/v1"


SCALE_TO_ZERO: dict[str, tuple[str, bool]] = {
    # mode -> (mode as written, whether the model is autoscaled with replicas {min: 0, max: 2})
    "builtin": ("builtin", True),
    "keda": ("keda", True),
    "none": ("none", False),
    "default": ("", True),
}


@pytest.mark.parametrize("case", list(SCALE_TO_ZERO), ids=list(SCALE_TO_ZERO))
def test_scale_to_zero_is_allowed_except_for_hpa(case: str) -> None:
    mode, autoscaled = SCALE_TO_ZERO[case]
    changes: dict[str, Any] = {f"{CODER}__replicas": {"min": 0, "max": 2}}
    if mode:
        changes[f"{CODER}__autoscaling"] = {"mode": mode}
    coder = ModelFleet.from_body(fleet(**changes)).spec.model("coder")
    assert (coder.replicas.min, coder.autoscaled) == (0, autoscaled)


def test_status_round_trips_from_the_wire() -> None:
    body = fleet(
        status={
            "observedGeneration": 3,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "AllReady", "lastTransitionTime": "t"}
            ],
            "models": [{"name": "coder", "readyReplicas": 1, "desiredReplicas": 1, "phase": "Ready"}],
            "modelsReady": "1/2",
            "kopf": {"progress": {}},
        }
    )
    status = ModelFleet.from_body(body).status
    assert status is not None
    assert status.condition("Ready") is not None
    assert status.to_wire()["models"][0]["readyReplicas"] == 1
    assert "kopf" not in status.to_wire()


def test_placement_defaults_to_a_pod_per_model_and_inherits_the_fleet_default() -> None:
    spec = ModelFleet.from_body(BASE).spec
    assert spec.pack_of(spec.model("pocket")) == "none"
    packed = ModelFleet.from_body(
        fleet(spec__placement={"pack": "small"}, spec__packs=[{"name": "small", "memory": "24Gi"}],
              **{f"{CODER}__placement": {"pack": "none"}})
    ).spec  # fmt: skip
    assert (packed.pack_of(packed.model("pocket")), packed.pack_of(packed.model("coder"))) == (
        "small",
        "none",
    )
    assert packed.packs[0].safety_margin_percent == 10


def test_train_defaults_to_lora_and_200_steps() -> None:
    body = fleet(
        spec__distillation=SINK,
        spec__routing__tasks=[{"name": "code", "distillation": {"train": TRAIN}}],
    )
    train = ModelFleet.from_body(body).spec.routing.tasks[0].distillation
    assert train is not None and train.train is not None
    assert (train.train.base, train.train.when.traces, train.train.method, train.train.steps) == (
        "pocket",
        500,
        "lora",
        200,
    )
    assert train.train.image is None
