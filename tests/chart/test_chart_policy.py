"""The chart's allow-lists (`policy.*`): the same values reach the operator's env and the
ValidatingAdmissionPolicy, and a real apiserver refuses a fleet outside them with the policy's message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import chartkit
import operatorkit
import pytest
from conftest import Release

from flotilla.reconcile import admitting

MINIMAL = chartkit.ROOT / "examples" / "01-minimal" / "fleet.yaml"
POLICY = {
    "policy.providerHosts": ["*.models.example"],
    "policy.httpProviderHosts": ["standin"],
}


def test_policy_values_reach_the_operator_and_the_admission_policy() -> None:
    objects = chartkit.template(values={**POLICY, "operator.watchNamespaces": ["ai", "ml"]})
    env = chartkit.container_env(chartkit.only(objects, "Deployment"))
    loaded = admitting.load({k: v for k, v in env.items() if k.startswith("FLOTILLA_ALLOWED_")})
    assert loaded == admitting.Policy(admitting.DEFAULT_IMAGE_PREFIXES, ("*.models.example",), ("standin",))
    policy = chartkit.only(objects, "ValidatingAdmissionPolicy")
    variables = {v["name"]: json.loads(v["expression"]) for v in policy["spec"]["variables"][:3]}
    assert variables == {
        "imagePrefixes": list(admitting.DEFAULT_IMAGE_PREFIXES),
        "providerHosts": ["*.models.example"],
        "httpProviderHosts": ["standin"],
    }
    assert policy["spec"]["failurePolicy"] == "Fail"
    binding = chartkit.only(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["validationActions"] == ["Deny"]
    [scope] = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert scope["values"] == ["ai", "ml"]  # the policy binds where the operator serves


def test_admission_can_be_left_to_the_operator() -> None:
    objects = chartkit.template(values={"policy.admission": False})
    assert not chartkit.by_kind(objects, "ValidatingAdmissionPolicy")
    assert not chartkit.by_kind(objects, "ValidatingAdmissionPolicyBinding")
    assert "FLOTILLA_ALLOWED_IMAGE_PREFIXES" in chartkit.container_env(chartkit.only(objects, "Deployment"))


@pytest.fixture
def other_namespace(cluster: object) -> Iterator[str]:
    with operatorkit.scratch_namespace("flotilla-chart-other") as name:
        yield name


def _fleet(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    doc = operatorkit.fleet_doc(MINIMAL, namespace, name)
    doc["spec"].update(spec)
    return doc


def _compatible(url: str) -> list[dict[str, Any]]:
    key = {"secretKeyRef": {"name": "k", "key": "api-key"}}
    return [{"name": "compat", "provider": "openai-compatible", "model": "m", "baseURL": url, "apiKey": key}]


def _jwt(url: str) -> dict[str, Any]:
    policy = {"name": "team", "tasks": []}
    return {"jwt": {"jwksURL": url, "issuer": "https://idp.example", "audience": "f", "policies": [policy]}}


def _apply(doc: dict[str, Any]) -> tuple[int, str]:
    done = operatorkit.kubectl_try("apply", "-f", "-", stdin=json.dumps(doc))
    return done.returncode, done.stderr


@pytest.mark.cluster
def test_installed_policy_refuses_fleets_outside_the_allow_lists(
    release: Release, fleet_namespace: str, other_namespace: str
) -> None:
    flags = [f"--set-json={k}={json.dumps(v)}" for k, v in POLICY.items()]
    release.install(*flags, f"--set-json=operator.watchNamespaces={json.dumps([fleet_namespace])}")
    name = f"{release.fullname}-modelfleets"
    assert operatorkit.get_json("validatingadmissionpolicy", name)["spec"]["failurePolicy"] == "Fail"
    denied = f"ValidatingAdmissionPolicy '{name}' with binding '{name}' denied request"

    plain_http = _fleet(fleet_namespace, "plain-http", fallbacks=_compatible("http://collector.example/v1"))
    rc, err = operatorkit.wait_until(  # the apiserver loads a new policy within a second or so
        lambda: (r := _apply(plain_http))[0] != 0 and r, 30, "the policy to take effect"
    )
    assert (
        denied in err and "plain http is only allowed to the hosts the operator names for it (standin)" in err
    )
    refused = {
        "other-host": (
            {"fallbacks": _compatible("https://collector.example/v1")},
            "its host is not among the allowed provider hosts (*.models.example)",
        ),
        "metadata": (
            {"fallbacks": _compatible("https://169.254.169.254/latest")},
            "link-local and cloud metadata addresses are never provider hosts",
        ),
        "model-image": (
            {
                "models": [
                    {**_fleet(fleet_namespace, "x")["spec"]["models"][0], "image": "attacker.example/x:1"}
                ]
            },
            "spec.models[].image is not allowed: images must start with one of the allowed prefixes "
            "(flotilla:, flotilla-llamacpp:, flotilla-gemma3-270m:, flotilla-ray:, flotilla-ray-vllm:, "
            "flotilla-finetune:, flotilla-finetune-gpu:)",
        ),
        "router-image": (
            {"router": {"image": "registry.example/flotilla:1"}},
            "spec.router.image is not allowed",
        ),
        "train-image": (
            {
                "models": [{"name": "pocket", "runtime": "llamacpp", "source": {"uri": "pvc://m/a.gguf"}}],
                "routing": {
                    "tasks": [
                        {
                            "name": "math",
                            "distillation": {
                                "train": {
                                    "base": "pocket",
                                    "when": {"traces": 10},
                                    "image": "attacker.example/miner:1",
                                }
                            },
                        }
                    ]
                },
                "distillation": {"sink": {"volume": {"claimName": "traces"}}},
            },
            "spec.routing.tasks[].distillation.train.image is not allowed",
        ),
        "jwks-plain-http": (
            {"access": _jwt("http://idp.example/jwks")},
            "spec.access.jwt.jwksURL is not allowed: plain http is only allowed to the hosts the operator "
            "names for it (standin)",
        ),
        "jwks-metadata": (
            {"access": _jwt("https://metadata.google.internal/jwks")},
            "link-local and cloud metadata addresses are never JWKS hosts",
        ),
    }
    for fleet, (spec, message) in refused.items():
        rc, err = _apply(_fleet(fleet_namespace, fleet, **spec))
        assert rc != 0 and denied in err and message in err, (fleet, err)
    allowed = _fleet(
        fleet_namespace,
        "allowed",
        models=[
            {**_fleet(fleet_namespace, "x")["spec"]["models"][0], "image": "flotilla-gemma3-270m:0.1.0"},
            {**_fleet(fleet_namespace, "x")["spec"]["models"][0], "name": "packed",
             "image": "flotilla-ray:0.1.0", "placement": {"pack": "auto", "memory": "300Mi"}},
        ],
        fallbacks=[
            *_compatible("http://standin:8080/v1"),
            {**_compatible("https://eu.models.example/v1")[0], "name": "eu"},
        ],
        access=_jwt("https://idp.example/.well-known/jwks.json"),  # any https host serves keys
    )  # fmt: skip
    assert _apply(allowed)[0] == 0, _apply(allowed)[1]
    assert _apply(_fleet(other_namespace, "unbound", fallbacks=_compatible("http://x.example/v1")))[0] == 0
