"""The servers under test, each started by the harness in front of the same fake backend.

- ``direct``: no proxy, wrk talks to the backend (the baseline every "added latency" is measured against);
- ``flotilla``: ``flotilla router --config router.yaml`` from the project venv;
- ``flotilla-keyed`` (optional): the same with access control on (one API key, no limits), for the cost of
  authentication per request (every contender is sent the same ``Authorization`` header);
- ``flotilla-capture`` (optional): the same with distillation capture of every request into a directory
  sink (``FLOTILLA_BENCH_CAPTURE_SAMPLE``: a sample below 1), for the cost of capture on throughput;
- ``litellm``: LiteLLM proxy, one worker, no database, logging off (separate venv);
- ``vllm-router``: the Rust router from PyPI ``vllm-router``, round-robin policy (separate venv).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import loadgen
import procs

VENVS = Path.home() / ".cache" / "flotilla" / "bench-venvs"
REPO = Path(__file__).resolve().parents[2]


def dist_version(python: Path, dist: str) -> str:
    """Installed version of ``dist`` in the venv of ``python`` ("?" when it cannot be read)."""
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


@dataclass(frozen=True)
class Setup:
    """What starting a contender needs: where the backend is, where to write configs, which cores to use."""

    backend_url: str
    work: Path
    cpus: str | None
    litellm_workers: int
    nice: int


@dataclass
class Running:
    """A started contender: its base URL and (unless ``direct``) its process."""

    name: str
    url: str
    proc: procs.Proc | None
    note: str


Starter = Callable[[Setup], Running]


def _start_direct(setup: Setup) -> Running:
    return Running("direct", setup.backend_url, None, "no proxy: wrk -> fake backend")


def _flotilla_config(backend_url: str, keyed: bool = False, capture: Path | None = None) -> str:
    """The router config as JSON (YAML's subset): fleet model ``fake``, tasks ``chat`` and ``code`` to it;
    ``keyed``: access control with the bench's one key; ``capture``: every answer captured under it."""
    config: dict[str, object] = {
        "fleet": "bench",
        "defaultTask": "chat",
        "tasks": [{"name": "chat", "models": ["fake"]}, {"name": "code", "models": ["fake"]}],
        "models": [
            {"name": "fake", "servedModelName": "fake", "endpoints": [backend_url], "maxInFlight": 4096}
        ],
    }
    if keyed:
        digest = hashlib.sha256(loadgen.API_KEY.encode()).hexdigest()
        config["access"] = {"keys": [{"name": "bench", "sha256": digest}]}
    if capture is not None:
        sample = float(os.environ.get("FLOTILLA_BENCH_CAPTURE_SAMPLE", "1"))  # default: every request
        capture_all = {"sample": sample, "from": "all"}
        config["tasks"] = [{"name": n, "models": ["fake"], "capture": capture_all} for n in ("chat", "code")]
        config["capture"] = {
            "directory": {"path": str(capture / "store")},
            "spoolDir": str(capture / "spool"),
            "spoolMaxBytes": 2**30,
        }
    return json.dumps(config, indent=2)


def _start_flotilla(
    setup: Setup,
    name: str = "flotilla",
    source: Path | None = None,
    keyed: bool = False,
    capture: bool = False,
) -> Running:
    """The project's router, or with ``source`` the router of another checkout (its ``operator/`` first on
    the path, run by the project venv's Python): a before/after comparison in one run."""
    config = setup.work / f"{name}-router.yaml"
    traces = setup.work / f"{name}-traces" if capture else None
    config.write_text(_flotilla_config(setup.backend_url, keyed, traces))
    port = procs.free_port()
    python = REPO / ".venv" / "bin" / "python"
    if not python.exists():  # a git worktree: the main checkout's venv runs the bench (and the router)
        python = Path(sys.executable)
    cmd = [str(python), "-m", "flotilla.cli", "router", "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    if source is not None:
        cmd = ["env", f"PYTHONPATH={source / 'operator'}", *cmd]
    proc = procs.start(name, procs.pinned(cmd, setup.cpus), setup.work, nice=setup.nice)
    try:
        procs.wait_http(proc, f"http://127.0.0.1:{port}/healthz", timeout=60)
    except procs.StartError:
        proc.stop()
        raise
    version = dist_version(python, "flotilla") if source is None else f"checkout {source}"
    return Running(name, f"http://127.0.0.1:{port}", proc, f"{version}, 1 process (uvicorn)")


def _start_flotilla_baseline(setup: Setup) -> Running:
    """``FLOTILLA_BASELINE=DIR``: a checkout of an earlier commit (``git worktree add DIR REV``)."""
    source = os.environ.get("FLOTILLA_BASELINE")
    if not source:
        raise procs.StartError("flotilla-baseline needs FLOTILLA_BASELINE=<checkout of the earlier code>")
    return _start_flotilla(setup, "flotilla-baseline", Path(source))


def _start_flotilla_keyed(setup: Setup) -> Running:
    return _start_flotilla(setup, "flotilla-keyed", keyed=True)


def _start_flotilla_capture(setup: Setup) -> Running:
    return _start_flotilla(setup, "flotilla-capture", capture=True)


LITELLM_CONFIG = """\
model_list:
  - model_name: fake
    litellm_params:
      model: openai/fake
      api_base: {backend_url}/v1
      api_key: bench
litellm_settings:
  set_verbose: false
  json_logs: false
  turn_off_message_logging: true
  drop_params: true
  callbacks: []
  success_callback: []
  failure_callback: []
general_settings:
  disable_spend_logs: true
  disable_error_logs: true
  allow_requests_on_db_unavailable: true
"""


def _start_litellm(setup: Setup) -> Running:
    exe = VENVS / "litellm" / "bin" / "litellm"
    if not exe.exists():
        raise procs.StartError(
            f"{exe} missing: python3 -m venv {exe.parents[1]} && pip install 'litellm[proxy]'"
        )
    config = setup.work / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(backend_url=setup.backend_url))
    port = procs.free_port()
    workers = setup.litellm_workers
    cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", str(workers)]
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
        "PYTHONWARNINGS": "ignore",
        # no auth, like the other contenders (LiteLLM refuses to start without a key unless told so)
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    }
    name = "litellm" if workers == 1 else f"litellm-{workers}w"
    proc = procs.start(name, procs.pinned(cmd, setup.cpus), setup.work, env, setup.nice)
    try:
        procs.wait_http(proc, f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    except procs.StartError:
        proc.stop()
        raise
    version = dist_version(exe.with_name("python"), "litellm")
    note = f"{version}, {workers} worker(s), no DB, no auth, logging off"
    return Running(name, f"http://127.0.0.1:{port}", proc, note)


def _start_vllm_router(setup: Setup) -> Running:
    exe = VENVS / "vllm-router" / "bin" / "vllm-router"
    if not exe.exists():
        raise procs.StartError(f"{exe} missing: python3 -m venv {exe.parents[1]} && pip install vllm-router")
    port = procs.free_port()
    cmd = [str(exe), "--host", "127.0.0.1", "--port", str(port), "--worker-urls", setup.backend_url]
    cmd += ["--policy", "round_robin", "--log-level", "warning", "--prometheus-port", str(procs.free_port())]
    proc = procs.start("vllm-router", procs.pinned(cmd, setup.cpus), setup.work, nice=setup.nice)
    try:
        procs.wait_http(proc, f"http://127.0.0.1:{port}/health", timeout=60)
    except procs.StartError:
        proc.stop()
        raise
    version = dist_version(exe.with_name("python"), "vllm-router")
    return Running("vllm-router", f"http://127.0.0.1:{port}", proc, f"{version}, round_robin, log warning")


STARTERS: dict[str, Starter] = {
    "direct": _start_direct,
    "flotilla": _start_flotilla,
    "flotilla-baseline": _start_flotilla_baseline,
    "flotilla-keyed": _start_flotilla_keyed,
    "flotilla-capture": _start_flotilla_capture,
    "litellm": _start_litellm,
    "vllm-router": _start_vllm_router,
}
