"""ggml-org's `llama-server` on loopback: the real model server whose `/metrics` Prometheus scrapes.

`llama-server` is llama.cpp's own HTTP server, the llamacpp runtime's default flavor, rendered with
`--metrics` (operator/flotilla/runtimes/llamacpp.py); llama-cpp-python's server, which the router tests run,
has no `/metrics`. `scripts/llama-server` (run by `make setup`) builds it once from the same llama.cpp
source as the installed llama-cpp-python wheel; a test that needs it FAILS (never skips) when it is missing.
It serves the Gemma 3 270M GGUF the router tests use. Pair it with `promkit.ModelServer` to have Prometheus
scrape it as a fleet model's (kwok) pod.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
from routerkit import Proc, free_port, gemma_gguf

ALIAS = "gemma"
"""The model name it answers to (`--alias`)."""


def binary() -> Path:
    """The cached `llama-server` of the installed llama-cpp-python's version (scripts/llama-server)."""
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        message = "llama-cpp-python is not installed: run scripts/llama-wheel (or make setup)"
        raise AssertionError(message) from None
    path = Path.home() / ".cache" / "flotilla" / f"llama-server-{version}" / "bin" / "llama-server"
    if not path.exists():
        raise AssertionError(f"{path} is missing: run scripts/llama-server (make setup does; ~8 min, once)")
    return path


class LlamaServer:
    """`llama-server --metrics` serving Gemma 3 270M on a free loopback port; `stop` ends it by PID."""

    def __init__(self, log_dir: Path, name: str = "llama-server", extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            str(binary()), "--model", str(gemma_gguf()), "--alias", ALIAS, "--host", "127.0.0.1",
            "--port", str(self.port), "--metrics", "--ctx-size", "2048", "--threads", "2", *extra,
        ]  # fmt: skip
        self.proc = Proc(name, argv, log_dir)
        self.proc.wait_http(f"{self.url}/health", 120)  # 503 while the model loads, 200 once it serves

    def complete(self, text: str, max_tokens: int = 8) -> int:
        """One chat completion straight to the server; the number of tokens it generated."""
        body = {"model": ALIAS, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
        response = httpx.post(f"{self.url}/v1/chat/completions", json=body, timeout=60)
        response.raise_for_status()
        tokens: int = response.json()["usage"]["completion_tokens"]
        return tokens

    def metrics(self) -> str:
        """Its Prometheus exposition (`llamacpp:*`)."""
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return response.text

    def stop(self) -> None:
        self.proc.stop()
