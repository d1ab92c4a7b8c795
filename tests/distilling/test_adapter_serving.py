"""A model's `adapter` as the operator renders it, served by the real llama.cpp server: the llamacpp
runtime's rendered command (`--lora`, the model's own args) is run by ggml-org's `llama-server` with the
Gemma 3 270M GGUF and a LoRA adapter GGUF written by ``flotilla.distilling.adapters`` (the writer the
fine-tune uses), and the adapter changes what the model answers while the same command without it does not.

The adapter here is not trained (``test_distill_finetune`` is, under the ``finetune`` marker): its weights
are fixed random numbers large enough to move every answer, which is what shows the server applied it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.api.fleet import ModelFleet
from flotilla.render.fleet import render_fleet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))
from routerkit import Proc, free_port, gemma_gguf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from llamakit import binary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distilkit import random_adapter

pytestmark = pytest.mark.llamacpp

PROMPTS = ["What is the capital of France?", "Name three colours.", "Say hello in Spanish."]
RANK = 4


def _rendered_args(base: Path, adapter: Path | None) -> list[str]:
    """The server container's args of a one-model fleet (file:// paths: the files are already local)."""
    model: dict[str, Any] = {
        "name": "distilled",
        "source": {"uri": f"file://{base}"},
        "runtime": "llamacpp",
        "args": ["--no-jinja", "--chat-template", "gemma"],
    }
    if adapter is not None:
        model["adapter"] = {"uri": f"file://{adapter}"}
    body = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": "lora", "namespace": "default"},
        "spec": {"models": [model]},
    }
    (deployment,) = [
        o
        for o in render_fleet(ModelFleet.from_body(body))
        if o["kind"] == "Deployment" and "distilled" in o["metadata"]["name"]
    ]
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert not deployment["spec"]["template"]["spec"].get("initContainers")  # file://: nothing to fetch
    args: list[str] = server["args"]
    return args


def _serve(args: list[str], log_dir: Path, name: str) -> tuple[Proc, str]:
    """llama-server with the rendered args, moved from the pod's 0.0.0.0:8080 to a free loopback port."""
    port = free_port()
    local = list(args)
    local[local.index("--host") + 1] = "127.0.0.1"
    local[local.index("--port") + 1] = str(port)
    proc = Proc(name, [str(binary()), *local, "--threads", "2", "--ctx-size", "1024"], log_dir)
    proc.wait_http(f"http://127.0.0.1:{port}/health", 120)
    return proc, f"http://127.0.0.1:{port}"


def _answers(url: str) -> list[str]:
    out = []
    for prompt in PROMPTS:
        body = {
            "model": "distilled",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 12,
            "temperature": 0,
            "cache_prompt": False,  # a reused prompt cache may change the low bits, and a 270M model's ties
        }
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
        response.raise_for_status()
        out.append(str(response.json()["choices"][0]["message"]["content"]))
    return out


def _adapters(url: str) -> list[dict[str, Any]]:
    """The LoRA adapters the server has loaded (llama-server's ``GET /lora-adapters``)."""
    response = httpx.get(f"{url}/lora-adapters", timeout=10)
    response.raise_for_status()
    loaded: list[dict[str, Any]] = response.json()
    return loaded


def test_the_rendered_command_serves_the_models_adapter(tmp_path: Path) -> None:
    base = gemma_gguf()
    adapter = tmp_path / "adapter.gguf"
    random_adapter(adapter, base, RANK)
    with_adapter = _rendered_args(base, adapter)
    assert with_adapter[with_adapter.index("--lora") + 1] == str(adapter)
    without = _rendered_args(base, None)
    assert "--lora" not in without

    procs: list[Proc] = []
    try:
        plain, plain_url = _serve(without, tmp_path, "llama-base")
        procs.append(plain)
        tuned, tuned_url = _serve(with_adapter, tmp_path, "llama-adapter")
        procs.append(tuned)
        base_answers, again = _answers(plain_url), _answers(plain_url)
        adapted = _answers(tuned_url)
        loaded = {url: _adapters(url) for url in (plain_url, tuned_url)}
    finally:
        for proc in procs:
            proc.stop()
    assert base_answers == again  # temperature 0: the comparison below is not noise
    assert all(a.strip() for a in base_answers), base_answers  # the chat template reached the base model
    changed = sum(a != b for a, b in zip(base_answers, adapted, strict=True))
    assert changed == len(PROMPTS), (base_answers, adapted)
    assert loaded[plain_url] == []
    assert [(a["path"], a["scale"]) for a in loaded[tuned_url]] == [(str(adapter), 1.0)]
