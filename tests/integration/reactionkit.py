"""One fleet, one model per autoscaling mode, and everything each mode needs, on the local cluster: the
same real load step can then be put on any of them (tests/integration/test_hpa_scaling.py, bench/reaction.py).

What runs: the real `flotilla operator` (its built-in autoscaler ticking every `interval`, reaching the
loopback router through FLOTILLA_AUTOSCALER_HOST_ALIASES); a real `flotilla router` running the config the
operator rendered, as the fleet's router pod (routerpodkit), each model's upstream pointed at a real
`llama-server --metrics` of its own serving Gemma 3 270M (llamakit); a real Prometheus scraping the router
through the chart's router ServiceMonitor, and the `hpa` model's llama-server as that model's (kwok) pods
through the chart's PodMonitor (promkit); for `keda`, KEDA's operator and metrics apiserver (kedakit); for
`hpa`, prometheus-adapter running the documented rule (adapterkit). Both metrics apiservers are registered
through the aggregation layer (aggregationkit), and the real kube-controller-manager's HPA controller
reads them.

The load: `clients` threads each streaming one long generation after another through the router (Gemma's
end tokens banned, so every answer runs to max_tokens); on stop each closes its stream. So the router's
in-flight gauge (what `builtin` and `keda` read) and llama-server's `requests_processing +
requests_deferred` (what `hpa` reads) both sit at `clients`.

kwok pods run no process, so the proof is the model Deployment's `spec.replicas`. One llama-server
plays all of the `hpa` model's pods, so each reports the whole load (with `clients` = target * max, every
mode's goal is max either way).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import adapterkit
import aggregationkit
import kedakit
import llamakit
import operatorkit as ok
import promkit
import routerpodkit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))  # helm template of the chart
import chartkit

FLEET = "reaction"
MODES = ("builtin", "hpa", "keda")
MIN, MAX, TARGET = 1, 3, 1
"""Every model: replicas 1..3, targetInFlight 1; a load of 3 wants 3 in every mode."""


def model_spec(mode: str, window: str, down_delay: str) -> dict[str, Any]:
    """The model named after its mode: the llama.cpp Gemma of the router tests, on kwok CPU pods."""
    return {
        "name": mode,
        "source": {"uri": "hf://unsloth/gemma-3-270m-it-GGUF"},
        "runtime": "llamacpp",
        "quantization": "Q4_K_M",
        "replicas": {"min": MIN, "max": MAX},
        "tasks": ["chat"],
        "autoscaling": {
            "mode": mode,
            "targetInFlight": TARGET,
            "window": window,
            "scaleDownDelay": down_delay,
        },
    }


def fleet_doc(namespace: str, modes: tuple[str, ...], window: str, down_delay: str) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": FLEET, "namespace": namespace},
        "spec": {
            "models": [model_spec(m, window, down_delay) for m in modes],
            "routing": {"defaultTask": "chat"},
        },
    }


def deployment(mode: str) -> str:
    return f"{FLEET}-{mode}"


def replicas(namespace: str, mode: str) -> int:
    found = ok.get_json("deployment", deployment(mode), "-n", namespace)
    return int(found["spec"].get("replicas", 0))


def long_story(model: str, max_tokens: int = 400) -> dict[str, Any]:
    """A streamed request for a long generation of `model` (what each load client sends)."""
    return {
        "model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        # <eos> 1 and <end_of_turn> 106 banned: every answer runs to max_tokens
        "logit_bias": {"1": -100, "106": -100},
    }  # fmt: skip


@dataclass(frozen=True)
class Reaction:
    """Seconds from load start to the first scale-up and to max, and from load stop back to min."""

    mode: str
    first_up: float
    at_max: float
    back_to_min: float


def _wait(namespace: str, mode: str, check: Any, timeout: float, what: str, since: float) -> float:
    ok.wait_until(
        lambda: check(replicas(namespace, mode)) or None, timeout, f"{deployment(mode)} {what}", 0.5
    )
    return time.monotonic() - since


class Stack:
    """The fleet `reaction` with one model per mode in `modes`, and every process they need (see module
    docstring); `close` stops them all (the namespace is the caller's)."""

    def __init__(
        self,
        modes: tuple[str, ...],
        namespace: str,
        kubeconfig: Path,
        operator_kubeconfig: Path,
        tmp: Path,
        window: str = "1s",
        down_delay: str = "5s",
        interval: float = 5.0,
    ) -> None:
        self.modes, self.namespace, self.tmp = modes, namespace, tmp
        self.stack = contextlib.ExitStack()
        try:
            self._start(kubeconfig, operator_kubeconfig, window, down_delay, interval)
        except BaseException:
            self.close()
            raise

    def _start(
        self, kubeconfig: Path, operator_kubeconfig: Path, window: str, down_delay: str, interval: float
    ) -> None:
        namespace, tmp, push = self.namespace, self.tmp, self.stack.callback
        self.servers: dict[str, llamakit.LlamaServer] = {}
        for mode in self.modes:  # one each: the hpa model's must see only its own load
            server = llamakit.LlamaServer(tmp, f"llama-{mode}", extra=("--parallel", str(MAX * TARGET)))
            push(server.stop)
            self.servers[mode] = server
        chart = chartkit.template(
            namespace=namespace,
            values={"metrics.serviceMonitor.enabled": True, "metrics.podMonitor.enabled": True,
                    "operator.watchNamespaces": [namespace]},
        )  # fmt: skip
        (routers,) = [
            m for m in chartkit.by_kind(chart, "ServiceMonitor") if m["metadata"]["name"].endswith("-routers")
        ]
        (models,) = chartkit.by_kind(chart, "PodMonitor")
        plays = (
            [promkit.ModelServer(namespace, FLEET, "hpa", self.servers["hpa"].port)]
            if "hpa" in self.modes
            else []
        )
        scrapes = [
            promkit.scrape_config(routers, kubeconfig),
            promkit.scrape_config(models, kubeconfig, model_servers=plays),
        ]
        self.prometheus = promkit.Prometheus(scrapes, [], tmp)
        push(self.prometheus.stop)
        self.operator = ok.OperatorProcess(
            operator_kubeconfig, tmp, args=("--namespace", namespace),
            env={"FLOTILLA_KEDA_PROMETHEUS_URL": self.prometheus.url,
                 "FLOTILLA_AUTOSCALER_INTERVAL": f"{interval:g}", "FLOTILLA_AUTOSCALER_SCRAPE_TIMEOUT": "1",
                 "FLOTILLA_AUTOSCALER_HOST_ALIASES": f"{routerpodkit.HOST}=127.0.0.1"},
        )  # fmt: skip
        ok.apply_doc(fleet_doc(namespace, self.modes, window, down_delay))
        self.operator.start()
        push(self.operator.stop)
        self._start_router()
        if "keda" in self.modes:
            self._start_keda(kubeconfig)
        if "hpa" in self.modes:
            adapter = adapterkit.PrometheusAdapter(self.prometheus.url, kubeconfig, namespace, tmp)
            push(adapter.stop)
            self.adapter = adapter
            api = aggregationkit.register(adapter.register_docs())
            push(aggregationkit.unregister, api)

    def _start_router(self) -> None:
        config = routerpodkit.rendered_config(self.namespace, FLEET, lambda name: self.servers[name].url)
        router = routerpodkit.LoopbackRouter(self.namespace, FLEET, config, self.tmp)
        self.stack.callback(router.stop)
        self.url = f"{router.url}/v1/chat/completions"
        self.prometheus.wait_loopback_targets("servicemonitor/", 1, timeout=90)

    def _start_keda(self, kubeconfig: Path) -> None:
        keda = kedakit.KedaOperator(kubeconfig, self.namespace, self.tmp)
        # KEDA puts a finalizer on the ScaledObject: delete it while KEDA runs (the callbacks run last
        # first), or the namespace would hang in deletion.
        self.stack.callback(keda.stop)
        self.stack.callback(
            ok.kubectl, "delete", "scaledobject.keda.sh", deployment("keda"), "-n", self.namespace,
            "--timeout=60s", check=False,
        )  # fmt: skip
        self.stack.callback(self.operator.stop)
        adapter = kedakit.KedaMetricsServer(keda, kubeconfig, self.namespace, self.tmp)
        self.stack.callback(adapter.stop)
        api = aggregationkit.register(adapter.register_docs())
        self.stack.callback(aggregationkit.unregister, api)

    def step(self, mode: str, clients: int, timeout: float = 180) -> Reaction:
        """Put `clients` on the model of `mode` (which must be at min) until it is at max, then take them
        off until it is back at min; every Deployment read 0.5 s apart."""
        assert replicas(self.namespace, mode) == MIN, f"{deployment(mode)} not at min before the step"
        load = routerpodkit.Load(self.url, long_story(mode), clients)
        try:
            started = time.monotonic()
            first = _wait(self.namespace, mode, lambda r: r > MIN, timeout, "scaled up under load", started)
            at_max = _wait(self.namespace, mode, lambda r: r == MAX, timeout, f"at {MAX} under load", started)
        finally:
            load.stop()
        if not load.statuses or set(load.statuses) != {200}:
            raise AssertionError(f"the load's answers: {load.statuses}")
        stopped = time.monotonic()
        down = _wait(self.namespace, mode, lambda r: r == MIN, timeout, f"back at {MIN}", stopped)
        return Reaction(mode, first, at_max, down)

    def close(self) -> None:
        self.stack.close()
