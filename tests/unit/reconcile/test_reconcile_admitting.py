"""The operator's allow-lists: which images and provider URLs a fleet may name, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla import errors
from flotilla.api import fleet as fleet_api
from flotilla.reconcile import admitting
from flotilla.render.fleet import render_fleet

POLICY = admitting.Policy(
    image_prefixes=("flotilla:", "registry.example/llm/"),
    provider_hosts=("llm.example.com", "*.models.example"),
    http_provider_hosts=("standin", "vllm.shared.svc"),
)


def _fleet(
    image: str | None = None,
    router_image: str | None = None,
    base_url: str | None = None,
    train_image: str | None = None,
) -> Any:
    model: dict[str, Any] = {"name": "pocket", "source": {"uri": "pvc://m/a.gguf"}, "runtime": "llamacpp"}
    if image:
        model["image"] = image
    spec: dict[str, Any] = {"models": [model]}
    if train_image:
        train = {"base": "pocket", "when": {"traces": 10}, "image": train_image}
        spec["routing"] = {
            "tasks": [{"name": "math", "models": ["pocket"], "distillation": {"train": train}}]
        }
        spec["distillation"] = {"sink": {"volume": {"claimName": "traces"}}}
    if router_image:
        spec["router"] = {"image": router_image}
    if base_url:
        key = {"secretKeyRef": {"name": "k", "key": "k"}}
        fallback = {"name": "frontier", "provider": "openai-compatible", "baseURL": base_url, "model": "m"}
        spec["fallbacks"] = [{**fallback, "apiKey": key}]
    return fleet_api.ModelFleet.from_body({"metadata": {"name": "f"}, "spec": spec})


ALLOWED = {
    "no image, no fallback": {},
    "project image": {"image": "flotilla:0.1.0"},
    "allowed registry": {"image": "registry.example/llm/gemma:1", "router_image": "flotilla:2"},
    "training image from the allowed registry": {"train_image": "registry.example/llm/finetune:1"},
    "https to an exact host": {"base_url": "https://llm.example.com/v1"},
    "https to a subdomain": {"base_url": "https://eu.models.example:8443/v1"},
    "http to a named in-cluster host": {"base_url": "http://standin:8080/v1"},
    "https to an http host": {"base_url": "https://vllm.shared.svc/v1"},
    "host case ignored": {"base_url": "https://LLM.Example.com/v1"},
}

REFUSED = {
    "other image": ({"image": "attacker.example/exfil:1"}, "spec.models[0].image"),
    "prefix look-alike": ({"image": "registry.example/llm-evil/x:1"}, "spec.models[0].image"),
    "router image": ({"router_image": "attacker.example/router:1"}, "spec.router.image"),
    "training image": (
        {"train_image": "attacker.example/miner:1"},
        "spec.routing.tasks[0].distillation.train.image",
    ),
    "plain http to an https host": ({"base_url": "http://llm.example.com/v1"}, "plain http"),
    "https to another host": ({"base_url": "https://collector.example/v1"}, "not among"),
    "suffix without the dot": ({"base_url": "https://evilmodels.example/v1"}, "not among"),
    "bare suffix domain": ({"base_url": "https://models.example/v1"}, "not among"),
    "metadata IP": ({"base_url": "http://169.254.169.254/latest"}, "metadata"),
    "metadata name": ({"base_url": "http://metadata.google.internal/v1"}, "metadata"),
    "AWS IPv6 metadata": ({"base_url": "http://[fd00:ec2::254]/v1"}, "metadata"),
    "IPv4-mapped metadata": ({"base_url": "https://[::ffff:169.254.169.254]/v1"}, "metadata"),
}


@pytest.mark.parametrize("fields", ALLOWED.values(), ids=ALLOWED.keys())
def test_allowed(fields: dict[str, str]) -> None:
    assert admitting.violations(_fleet(**fields), POLICY) == []


@pytest.mark.parametrize(("fields", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_refused(fields: dict[str, str], expected: str) -> None:
    problems = admitting.violations(_fleet(**fields), POLICY)
    assert len(problems) == 1 and expected in problems[0], problems


def test_metadata_refused_even_when_every_host_is_allowed() -> None:
    anything = admitting.Policy(provider_hosts=("*",), http_provider_hosts=("169.254.169.254",))
    assert admitting.violations(_fleet(base_url="https://llm.example.com/v1"), anything) == []
    for url in ("https://169.254.169.254/v1", "http://169.254.169.254/v1", "https://metadata/v1"):
        assert "metadata" in admitting.violations(_fleet(base_url=url), anything)[0]


def test_defaults_allow_the_project_images_and_no_custom_provider() -> None:
    default = admitting.load({})
    assert admitting.violations(_fleet(image="flotilla-gemma3-270m:0.1.0"), default) == []
    assert admitting.violations(_fleet(train_image="flotilla-finetune:0.1.0"), default) == []
    assert admitting.violations(_fleet(base_url="http://standin:8080/v1"), default)
    assert admitting.violations(_fleet(base_url="https://llm.example.com/v1"), default)


def test_defaults_allow_every_image_a_default_rendered_pack_runs() -> None:
    """CPU and GPU packs as the operator renders them by default (flotilla-ray, flotilla-ray-vllm): their
    images are the project's own, so a fleet naming them passes the default allow-list too."""
    cpu = {"name": "pocket", "source": {"uri": "pvc://m/a.gguf"}, "runtime": "llamacpp"}
    gpu = {
        "name": "coder", "source": {"uri": "hf://Qwen/Qwen2.5-0.5B-Instruct"}, "runtime": "vllm",
        "accelerator": {"gpus": 1, "product": "NVIDIA-L4"},
    }  # fmt: skip
    models = [{**m, "placement": {"pack": "auto", "memory": "300Mi"}} for m in (cpu, gpu)]
    body = {"metadata": {"name": "f", "namespace": "ns"}, "spec": {"models": models}}
    packed = fleet_api.ModelFleet.from_body(body)
    default = admitting.load({})
    assert admitting.violations(packed, default) == []
    images = {
        c["image"]
        for o in render_fleet(packed)
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert {i.split(":")[0] for i in images} == {"flotilla", "flotilla-ray", "flotilla-ray-vllm"}
    for image in images:
        assert image.startswith(default.image_prefixes), image
        named = fleet_api.ModelFleet.from_body({**body, "spec": {"models": [{**cpu, "image": image}]}})
        assert admitting.violations(named, default) == [], image


def test_load_reads_comma_separated_lists_and_empty_means_none() -> None:
    policy = admitting.load({
        "FLOTILLA_ALLOWED_IMAGE_PREFIXES": "",
        "FLOTILLA_ALLOWED_PROVIDER_HOSTS": " a.example , *.b.example ,",
        "FLOTILLA_ALLOWED_HTTP_PROVIDER_HOSTS": "standin",
    })  # fmt: skip
    assert policy == admitting.Policy((), ("a.example", "*.b.example"), ("standin",))
    with pytest.raises(errors.UsageError, match="exact host names"):
        admitting.load({"FLOTILLA_ALLOWED_HTTP_PROVIDER_HOSTS": "*.svc"})


def test_check_raises_one_line_policy_error_naming_every_problem() -> None:
    fleet = _fleet(image="x:1", base_url="http://collector.example/v1")
    with pytest.raises(errors.PolicyError) as caught:
        admitting.check(fleet, POLICY)
    assert isinstance(caught.value, errors.InvalidSpecError)
    assert "spec.models[0].image" in str(caught.value) and "spec.fallbacks[0].baseURL" in str(caught.value)


def _jwt_fleet(jwks_url: str) -> Any:
    jwt = {"jwksURL": jwks_url, "issuer": "https://idp", "audience": "f", "policies": [{"name": "team"}]}
    model = {"name": "pocket", "source": {"uri": "pvc://m/a.gguf"}, "runtime": "llamacpp"}
    spec = {"models": [model], "access": {"jwt": jwt}}
    return fleet_api.ModelFleet.from_body({"metadata": {"name": "f"}, "spec": spec})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://login.anywhere.example/jwks", None),  # any https host: the router sends it nothing
        ("http://standin/jwks", None),
        ("http://idp.example/jwks", "plain http"),
        ("https://169.254.169.254/jwks", "metadata"),
        ("https://metadata.google.internal/jwks", "metadata"),
    ],
)
def test_the_jwks_url_is_checked_like_a_provider_url_but_any_https_host_will_do(
    url: str, problem: str | None
) -> None:
    found = admitting.violations(_jwt_fleet(url), POLICY)
    if problem is None:
        assert found == []
    else:
        [message] = found
        assert message.startswith("spec.access.jwt.jwksURL") and problem in message
