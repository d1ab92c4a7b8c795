"""Choosing the task: header, fleet model name, task alias, then the classifier (rules, embeddings)."""

from __future__ import annotations

import httpx
import pytest
from routerkit import chat, fleet_config


@pytest.fixture
def router(make_router, clean_flaky, cloud):
    config = fleet_config(clean_flaky.url, cloud.url)
    tasks = config["tasks"]
    assert isinstance(tasks, list)
    tasks[2]["match"] = {"keywords": ["zebra"]}  # writing (Anthropic fallback only)
    tasks.append(
        {
            "name": "cooking",
            "models": ["pod"],
            "fallbacks": ["frontier"],
            "match": {
                "examples": [
                    "How long should I boil an egg?",
                    "What can I cook with rice and beans?",
                    "Give me a recipe for pancakes",
                    "How do I roast vegetables in the oven?",
                ]
            },
        }
    )
    return make_router(config)


def _route(router, body: dict[str, object], **headers: str) -> tuple[str, str, str]:
    response = httpx.post(f"{router.url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    h = response.headers
    return h["x-flotilla-task"], h["x-flotilla-model"], h["x-flotilla-route-reason"]


def test_alias_model_header(router):
    assert _route(router, chat("hello", model="code")) == ("code", "pod", "alias")
    assert _route(router, chat("hello", model="pod")) == ("chat", "pod", "model")
    assert _route(router, chat("hello", model="claude")) == ("code", "claude", "model")  # first task using it
    # The header beats both the model field and the classifier.
    assert _route(
        router, chat("Write a Python function", model="chat"), **{"x-flotilla-task": "writing"}
    ) == ("writing", "claude", "header")


def test_auto_classifies_by_rules_embeddings_and_default(router):
    assert _route(router, chat("zebra")) == ("writing", "claude", "keyword:zebra")
    assert _route(router, chat("Write a Python function that reverses a linked list")) == (
        "code",
        "pod",
        "classifier",
    )
    assert _route(router, chat("How many minutes do I roast a whole chicken?", model="auto")) == (
        "cooking",
        "pod",
        "embedding",
    )
    assert _route(router, chat("hello")) == ("chat", "pod", "default")
    assert _route(router, {"messages": [{"role": "user", "content": "hello"}]}) == ("chat", "pod", "default")
    count = router.metric("flotilla_router_classification_seconds_count", reason="embedding")
    assert count == 1
    assert router.metric("flotilla_router_classified_requests_total", task="code", reason="classifier") == 1
    assert router.metric("flotilla_router_classifier_confidence_count", task="chat") == 2
    assert router.metric("flotilla_router_classifier_confidence_bucket", task="code", le="0.5") == 0


def test_models_list(router):
    body = httpx.get(f"{router.url}/v1/models", timeout=30).json()
    ids = [m["id"] for m in body["data"]]
    assert ids[0] == "auto"
    assert {"chat", "code", "writing", "cooking", "pod", "frontier", "claude"} <= set(ids)
    kinds = {m["id"]: m["flotilla"]["kind"] for m in body["data"]}
    assert kinds["cooking"] == "task" and kinds["pod"] == "model" and kinds["claude"] == "fallback"
    assert httpx.get(f"{router.url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{router.url}/readyz", timeout=5).status_code == 200
