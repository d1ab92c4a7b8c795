"""Fleet bodies for API tests: a valid base and a way to break one field at a time."""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {
    "apiVersion": "flotilla.dev/v1alpha1",
    "kind": "ModelFleet",
    "metadata": {"name": "assistants", "namespace": "ai"},
    "spec": {
        "models": [
            {
                "name": "coder",
                "source": {"uri": "hf://Qwen/Qwen2.5-Coder-1.5B-Instruct-AWQ"},
                "runtime": "vllm",
                "quantization": "awq",
                "accelerator": {"gpus": 1},
                "tasks": ["code"],
            },
            {
                "name": "pocket",
                "source": {"uri": "pvc://models/gemma-3-270m-q4_k_m.gguf"},
                "runtime": "llamacpp",
            },
        ],
        "fallbacks": [
            {
                "name": "frontier",
                "provider": "openai",
                "model": "gpt-4.1-mini",
                "apiKey": {"secretKeyRef": {"name": "openai", "key": "api-key"}},
            }
        ],
        "routing": {"tasks": [{"name": "code", "models": ["coder"], "fallbacks": ["frontier"]}]},
    },
}


def fleet(**changes: Any) -> dict[str, Any]:
    """A copy of BASE with dotted paths set (`spec.models.0.runtime="tgi"`); value None deletes the key."""
    body = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return body
