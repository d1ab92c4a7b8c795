"""The routing table the router reads: defaults derived from the models, the contract kept."""

from __future__ import annotations

from typing import Any

import yaml

from flotilla.api import routerconfig
from flotilla.api.fleet import ModelFleet
from flotilla.render.fleet import render_fleet, render_router_config


def fleet(spec: dict[str, Any]) -> ModelFleet:
    return ModelFleet.from_body({"metadata": {"name": "f", "namespace": "ns"}, "spec": spec})


MODELS = [
    {"name": "coder", "source": {"uri": "hf://o/r"}, "runtime": "vllm", "accelerator": {}, "tasks": ["code"]},
    {"name": "pocket", "source": {"uri": "pvc://c/m.gguf"}, "runtime": "llamacpp", "replicas": {"min": 0}},
]
FALLBACKS = [
    {"name": "a", "provider": "openai", "model": "x", "apiKey": {"secretKeyRef": {"name": "s", "key": "k"}}},
    {
        "name": "b",
        "provider": "openai-compatible",
        "model": "y",
        "baseURL": "http://b/v1",
        "timeout": "1m30s",
    },
]


def test_tasks_derived_from_models() -> None:
    config = render_router_config(fleet({"models": MODELS, "fallbacks": FALLBACKS}))
    routes = {t.name: (t.models, t.fallbacks) for t in config.tasks}
    assert routes == {"code": (["coder"], ["a", "b"]), "chat": (["pocket"], ["a", "b"])}
    assert config.default_task == "chat"


def test_explicit_routes_and_unset_models() -> None:
    routing = {
        "defaultTask": "code",
        "tasks": [
            {"name": "code", "fallbacks": []},
            {
                "name": "chat",
                "models": ["pocket", "coder"],
                "fallbacks": ["b"],
                "match": {"keywords": ["hi"]},
            },
        ],
        "fallbackOn": ["error"],
        "coldStartBudget": "500ms",
    }
    config = render_router_config(fleet({"models": MODELS, "fallbacks": FALLBACKS, "routing": routing}))
    routes = {t.name: t for t in config.tasks}
    assert (routes["code"].models, routes["code"].fallbacks) == (["coder"], [])
    assert routes["chat"].models == ["pocket", "coder"]
    assert routes["chat"].match.keywords == ["hi"]
    assert config.default_task == "code"
    assert config.fallback_on == ["error"]
    assert config.cold_start_budget_seconds == 0.5
    assert (routes["code"].mid_stream_failover, routes["code"].max_mid_stream_switches) == (True, 1)


def test_mid_stream_failover_per_task() -> None:
    tasks = [
        {"name": "code", "midStreamFailover": False},
        {"name": "chat", "maxMidStreamSwitches": 3},
    ]
    config = render_router_config(fleet({"models": MODELS, "routing": {"tasks": tasks}}))
    routes = {t.name: t for t in config.tasks}
    assert (routes["code"].mid_stream_failover, routes["chat"].max_mid_stream_switches) == (False, 3)
    wire = config.to_wire()["tasks"]
    assert wire[0]["midStreamFailover"] is False and wire[1]["maxMidStreamSwitches"] == 3


def test_default_task_named_only_by_a_model_gets_a_route() -> None:
    routing = {"defaultTask": "chat", "tasks": [{"name": "code", "models": ["coder"]}]}
    config = render_router_config(fleet({"models": MODELS, "routing": routing}))
    assert [t.name for t in config.tasks] == ["code", "chat"]
    assert config.tasks[1].models == ["pocket"]


def test_upstreams() -> None:
    config = render_router_config(fleet({"models": MODELS, "fallbacks": FALLBACKS}))
    coder, pocket = config.models
    assert coder.service == routerconfig.ServiceRef(namespace="ns", name="f-coder", port=8000)
    assert pocket.service is not None and pocket.service.port == 8080
    assert pocket.scale_from_zero and not coder.scale_from_zero
    a, b = config.fallbacks
    assert (a.base_url, a.api_key_env) == ("https://api.openai.com/v1", "FLOTILLA_API_KEY_A")
    assert (b.base_url, b.api_key_env, b.timeout_seconds) == ("http://b/v1", None, 90.0)


def test_fallbacks_only_fleet_routes_chat_to_the_cloud() -> None:
    config = render_router_config(fleet({"fallbacks": FALLBACKS}))
    assert [(t.name, t.models, t.fallbacks) for t in config.tasks] == [("chat", [], ["a", "b"])]


def test_config_map_holds_the_wire_form() -> None:
    parsed = fleet({"models": MODELS, "fallbacks": FALLBACKS})
    [config_map] = [o for o in render_fleet(parsed) if o["kind"] == "ConfigMap"]
    wire = yaml.safe_load(config_map["data"][routerconfig.CONFIG_KEY])
    assert routerconfig.RouterConfig.model_validate(wire) == render_router_config(parsed)
    assert wire["defaultTask"] == "chat"


def test_escalation_and_test_time_compute_reach_the_router() -> None:
    task = {
        "name": "math",
        "models": ["pocket", "coder"],
        "escalation": {"minMeanLogprob": -1.0, "verifiers": ["final-answer"], "holdTokens": 8},
        "testTimeCompute": {"samples": 5},
    }
    spec = {"models": MODELS, "fallbacks": FALLBACKS, "routing": {"tasks": [task, {"name": "chat"}]}}
    config = render_router_config(fleet(spec))
    math, chat = config.tasks
    assert math.escalation == routerconfig.Escalation(
        min_mean_logprob=-1.0, verifiers=["final-answer"], hold_tokens=8
    )
    assert math.test_time_compute == routerconfig.Sampling(samples=5, select="majority", temperature=0.7)
    assert chat.escalation is None and chat.test_time_compute is None
    # vLLM answers n > 1 in one request; llama.cpp does not (the router then sends parallel requests)
    assert {m.name: m.multiple_choices for m in config.models} == {"coder": True, "pocket": False}
    wire = routerconfig.RouterConfig.model_validate(config.to_wire())
    assert wire.tasks[0].escalation == math.escalation
