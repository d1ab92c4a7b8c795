"""Acceptance: the apiserver itself rejects each invalid fleet with the message a person needs (CRD CEL)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import operatorkit as ok
import pytest
import yaml

from flotilla.api import messages

pytestmark = pytest.mark.cluster

REALISTIC = ok.ROOT / "examples" / "02-realistic" / "fleet.yaml"
Edit = Callable[[dict[str, Any]], None]


def _duplicate_model(spec: dict[str, Any]) -> None:
    spec["models"].append(copy.deepcopy(spec["models"][2]))


def _min_over_max(spec: dict[str, Any]) -> None:
    spec["models"][2]["replicas"] = {"min": 3, "max": 2}


def _vllm_without_gpu(spec: dict[str, Any]) -> None:
    del spec["models"][1]["accelerator"]
    spec["models"][1]["accelerator"] = {"gpus": 0}


def _route_unknown_model(spec: dict[str, Any]) -> None:
    spec["routing"]["tasks"][0]["models"] = ["nope"]


def _route_unknown_fallback(spec: dict[str, Any]) -> None:
    spec["routing"]["tasks"][0]["fallbacks"] = ["nope"]


def _inline_api_key(spec: dict[str, Any]) -> None:
    spec["fallbacks"][0]["apiKey"] = {"value": "sk-live-123"}


def _unknown_provider(spec: dict[str, Any]) -> None:
    spec["fallbacks"][0]["provider"] = "mystery-cloud"


def _openai_elsewhere(spec: dict[str, Any]) -> None:
    spec["fallbacks"][0]["baseURL"] = "http://collector.example/v1"


def _unknown_runtime(spec: dict[str, Any]) -> None:
    spec["models"][2]["runtime"] = "ray-serve"


def _classifier_digest_not_hex(spec: dict[str, Any]) -> None:
    spec["routing"]["classifier"] = {"model": {"url": "https://a.example/c.npz", "sha256": "sha256:abc"}}


def _classifier_url_not_http(spec: dict[str, Any]) -> None:
    spec["routing"]["classifier"] = {"model": {"url": "file:///c.npz", "sha256": "ab" * 32}}


CASES: list[tuple[str, Edit, list[str]]] = [
    ("duplicate-model-names", _duplicate_model, [messages.DUPLICATE_MODEL]),
    ("min-greater-than-max", _min_over_max, [messages.REPLICAS_ORDER]),
    ("vllm-without-gpu", _vllm_without_gpu, [messages.runtime_needs_gpu("vllm")]),
    ("route-names-unknown-model", _route_unknown_model, [messages.UNKNOWN_ROUTE_MODEL]),
    ("route-names-unknown-fallback", _route_unknown_fallback, [messages.UNKNOWN_ROUTE_FALLBACK]),
    ("inline-api-key", _inline_api_key, [messages.INLINE_API_KEY]),
    ("unknown-provider", _unknown_provider, ['Unsupported value: "mystery-cloud"', '"openai", "anthropic"']),
    ("openai-elsewhere", _openai_elsewhere, [messages.OFFICIAL_ENDPOINT]),
    ("unknown-runtime", _unknown_runtime, ['Unsupported value: "ray-serve"', '"vllm", "llamacpp"']),
    ("classifier-digest-not-hex", _classifier_digest_not_hex, [messages.CLASSIFIER_SHA256]),
    ("classifier-url-not-http", _classifier_url_not_http, [messages.CLASSIFIER_URL]),
]


@pytest.mark.parametrize(("edit", "expected"), [(e, m) for _, e, m in CASES], ids=[c[0] for c in CASES])
def test_invalid_spec_is_rejected_with_its_message(
    flotilla_crds: None, namespace: str, edit: Edit, expected: list[str]
) -> None:
    doc = ok.fleet_doc(REALISTIC, namespace)
    edit(doc["spec"])
    done = ok.kubectl_try("apply", "-f", "-", stdin=json.dumps(doc))
    assert done.returncode != 0, f"the apiserver accepted an invalid fleet: {done.stdout}"
    for text in expected:
        assert text in done.stderr
    assert ok.get_json("modelfleets", "-n", namespace)["items"] == []


def test_valid_example_is_accepted(flotilla_crds: None, namespace: str) -> None:
    """The control case: the unedited example passes the same rules (server-side dry run)."""
    doc = ok.fleet_doc(REALISTIC, namespace)
    done = ok.kubectl_try("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(doc))
    assert done.returncode == 0, done.stderr


def _ready(namespace: str, name: str) -> dict[str, Any] | None:
    body = ok.get_json("modelfleet", name, "-n", namespace)
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("observedGeneration") == body["metadata"]["generation"]:
            return dict(cond)
    return None


def _task_pattern(spec: dict[str, Any]) -> None:
    spec["routing"]["tasks"][0]["match"] = {"patterns": ["("]}


def _redact_pattern(spec: dict[str, Any]) -> None:
    spec["distillation"] = {"sink": {"volume": {"claimName": "traces"}}, "redact": ["("]}


UNCOMPILABLE = {
    "task pattern": (_task_pattern, messages.INVALID_PATTERN),
    "redaction pattern": (_redact_pattern, messages.INVALID_REDACT_PATTERN),
}


@pytest.mark.parametrize("case", list(UNCOMPILABLE), ids=list(UNCOMPILABLE))
def test_pattern_the_router_cannot_compile_is_refused_by_the_operator(
    operator: ok.OperatorProcess, namespace: str, case: str
) -> None:
    """CEL cannot compile a Python regex, so the apiserver takes `patterns: ["("]` (or `redact: ["("]`); the
    operator must refuse the fleet (Ready=False, InvalidSpec, a Warning Event) and leave the router's config
    as it was, instead of rendering a config every new router pod fails to start with while the fleet stays
    Ready."""
    breaks, message = UNCOMPILABLE[case]
    doc = ok.fleet_doc(REALISTIC, namespace)
    name = doc["metadata"]["name"]
    ok.apply_doc(doc)
    config_map = ("configmap", f"{name}-router", "-n", namespace)
    ok.wait_until(lambda: ok.kubectl_try("get", *config_map).returncode == 0, 60, "the router ConfigMap")
    before = ok.get_json(*config_map)["data"]["router.yaml"]
    breaks(doc["spec"])
    ok.apply_doc(doc)  # accepted by the apiserver
    ready = ok.wait_until(
        lambda: (c := _ready(namespace, name)) and c["reason"] == "InvalidSpec" and c, 60, "InvalidSpec"
    )
    assert ready["status"] == "False" and message in ready["message"]
    selector = f"reason=InvalidSpec,involvedObject.name={name}"
    warnings = ok.wait_until(
        lambda: ok.get_json("events", "-n", namespace, f"--field-selector={selector}")["items"],
        30,
        "the Event",
    )
    assert warnings[0]["type"] == "Warning" and message in warnings[0]["message"]
    after = ok.get_json(*config_map)["data"]["router.yaml"]
    assert after == before and "(" not in yaml.safe_load(after)["tasks"][0]["match"]["patterns"]
    assert yaml.safe_load(after)["capture"] is None
