"""The chart's dashboard and alert rules against a real Prometheus scraping real routers and the operator.

What is real: Prometheus 3 (built from source by `e2e/cluster build`), discovering its targets through
the apiserver with the chart's own ServiceMonitors and PodMonitor (promkit.scrape_config translates them
as prometheus-operator does) and evaluating the chart's rules file; two `flotilla router` processes
running the router config the operator rendered; the `flotilla operator` process (`--metrics`); ggml-org's
`llama-server --metrics` serving Gemma 3 270M for the llamacpp model `pocket`, scraped through the
PodMonitor; the stand-in cloud provider, which also stands in for the vLLM model `coder`.

What is not: the router, operator and model pods (kwok runs no process): the processes run on loopback.
Routers and operator are published in EndpointSlices under `*.flotilla.test` host names that the scrape
config maps to 127.0.0.1; the PodMonitor's target of `pocket`'s kwok pod is mapped to the llama-server's
port (promkit.ModelServer). The rendered router config gets static upstream URLs instead of EndpointSlice
discovery (a kwok pod's IP answers nothing): `coder` -> the stand-in, `broken` -> a closed port,
`sleeper` (scaled to zero) -> none, `pocket` -> the llama-server. The vLLM pods are discovered by the
PodMonitor but not scraped, so the dashboard's `vllm:*` alternatives are evaluated, never fed.

Traffic makes every series the queries need: answers from `coder` (tokens, dollars saved) and from
`pocket` (real completions: the model-server panels), connection errors on `broken` until its circuit
breaker opens, spills of the cold `sleeper`, a 503 from the cloud itself (a 5xx to the client), cloud
spend; `broken`'s pod cannot be scheduled (not ready), and a second fleet whose router ConfigMap name is
taken keeps failing to reconcile.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import operatorkit as ok
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))  # the router tests' process kit
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))  # helm template of the chart
import chartkit
import llamakit
import promkit
from routerkit import PYTHON, Proc, free_port

pytestmark = pytest.mark.cluster

FLEET = "obs"
SQUATTED = "squatted"
HOST = "router.flotilla.test"
OPERATOR_HOST = "operator.flotilla.test"
RULES = chartkit.CHART / "rules" / "flotilla.rules.yaml"
DASHBOARD = chartkit.CHART / "dashboards" / "flotilla.json"
CLOUD_PRICE = {"inputPerMTok": 500000.0, "outputPerMTok": 500000.0}  # ~$0.5 a word: spend shows quickly
TOKENS_PANEL = "panel 'Model servers: generated tokens per second by model' A"
KV_CACHE_PANEL = "panel 'Model servers: KV-cache use by model (0-1)' A"
"""The one query no process here can feed: llama-server stopped exporting a KV-cache gauge in 2025
(ggml-org/llama.cpp#13660), and vLLM (vllm:kv_cache_usage_perc) does not run in the tests."""


def _model(
    name: str, task: str, replicas: dict[str, int], product: str = "NVIDIA-L4", keda: bool = False
) -> dict[str, Any]:
    model: dict[str, Any] = {
        "name": name,
        "source": {"uri": "hf://Qwen/Qwen2.5-0.5B-Instruct"},
        "runtime": "vllm",
        "accelerator": {"gpus": 1, "product": product},
        "replicas": replicas,
        "tasks": [task],
        "price": {"inputPerMTok": 0.02, "outputPerMTok": 0.06},
    }
    if keda:
        model["autoscaling"] = {"mode": "keda", "targetInFlight": 4}
    return model


def _llamacpp_model(name: str, task: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"uri": "hf://unsloth/gemma-3-270m-it-GGUF"},
        "runtime": "llamacpp",
        "quantization": "Q4_K_M",
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
        "replicas": {"min": 1},
        "tasks": [task],
        "price": {"inputPerMTok": 0.005, "outputPerMTok": 0.01},
    }


def _fleet(namespace: str, name: str = FLEET) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "models": [
                _model("coder", "code", {"min": 1}),
                _model("broken", "math", {"min": 1}, product="NVIDIA-NONE"),  # no such node: never ready
                _model("sleeper", "chat", {"min": 0, "max": 2}, keda=True),
                _llamacpp_model("pocket", "summarization"),
            ],
            "fallbacks": [{"name": "frontier", "provider": "openai-compatible", "baseURL": "http://cloud.invalid/v1",
                           "model": "gpt-standin", "price": CLOUD_PRICE}],
            "routing": {"defaultTask": "chat", "coldStartBudget": "0s"},
        },
    }  # fmt: skip


def _slice(
    namespace: str, service: str, name: str, host: str, port_name: str, port: int, pod: str | None = None
) -> dict[str, Any]:
    """An EndpointSlice of `service` for a loopback process; `pod` names the (kwok) pod it plays, so that
    Prometheus attaches that pod's metadata (the `pod` label KEDA's query selects on) as for a real pod."""
    endpoint: dict[str, Any] = {"addresses": [host], "conditions": {"ready": True}}
    if pod is not None:
        endpoint["targetRef"] = {"kind": "Pod", "name": pod, "namespace": namespace}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service,
                       "endpointslice.kubernetes.io/managed-by": "flotilla-tests"},
        },
        "addressType": "FQDN",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": [endpoint],
    }  # fmt: skip


def _router_pods(namespace: str) -> list[str]:
    def listed() -> list[str] | None:
        selector = f"flotilla.dev/fleet={FLEET},flotilla.dev/component=router"
        pods = ok.get_json("pods", "-n", namespace, "-l", selector)["items"]
        return sorted(p["metadata"]["name"] for p in pods) or None

    return ok.wait_until(listed, 60, "the fleet's (kwok) router pods")


class Router:
    def __init__(self, name: str, config: dict[str, Any], tmp: Path) -> None:
        path = tmp / f"router-{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.port, self.admin_port = free_port(), free_port()
        argv = [PYTHON, "-m", "flotilla.cli", "router", "--config", str(path), "--port", str(self.port),
                "--admin-port", str(self.admin_port)]  # fmt: skip
        self.proc = Proc(f"router-{name}", argv, tmp, {"POD_NAME": f"{FLEET}-router-{name}"})
        self.proc.wait_http(f"http://127.0.0.1:{self.port}/readyz", 60)

    def ask(self, task: str, text: str = "hello there", model: str = "auto") -> int:
        body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 8}
        headers = {"x-flotilla-task": task} if model == "auto" else {}
        url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        return httpx.post(url, json=body, headers=headers, timeout=30).status_code


def _traffic(routers: list[Router]) -> None:
    """One round: served requests (one by the real llama-server), a failing local model, a cold spill,
    a 5xx from the cloud itself."""
    for router in routers:
        assert router.ask("code") == 200
        assert router.ask("summarization", "Summarize: the sea is wide and deep.") == 200  # pocket
        assert router.ask("math") == 200  # broken -> frontier (error, then unavailable: breaker open)
        assert router.ask("chat") == 200  # sleeper is cold -> frontier (cold)
        assert router.ask("", "[standin status=503] fail", model="frontier") >= 500


def _rendered_router_config(namespace: str, cloud: str, closed_port: int, llama: str) -> dict[str, Any]:
    def rendered() -> dict[str, Any] | None:
        done = ok.kubectl_try("get", "configmap", f"{FLEET}-router", "-n", namespace, "-o", "json")
        return json.loads(done.stdout) if done.returncode == 0 else None

    config: dict[str, Any] = yaml.safe_load(
        ok.wait_until(rendered, 60, "the router ConfigMap")["data"]["router.yaml"]
    )
    endpoints = {"coder": [cloud], "broken": [f"http://127.0.0.1:{closed_port}"], "sleeper": [],
                 "pocket": [llama]}  # fmt: skip
    for model in config["models"]:
        model.pop("service", None)
        model["endpoints"] = endpoints[model["name"]]
    assert [m["scaleFromZero"] for m in config["models"]] == [False, False, True, False]
    config["fallbacks"] = [{**config["fallbacks"][0], "baseURL": f"{cloud}/v1"}]
    return config


def _expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboard (Grafana variables filled in) and of the alert rules."""
    exprs: dict[str, str] = {}
    dashboard = json.loads(DASHBOARD.read_text())
    for var in dashboard["templating"]["list"]:
        query = var.get("definition") or ""
        if match := re.fullmatch(r"label_values\((.+), (\w+)\)", query):
            exprs[f"variable {var['name']}"] = f"group by ({match.group(2)}) ({match.group(1)})"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            exprs[f"alert {rule['alert']}"] = rule["expr"].strip()
    return exprs


def _keda_load_query(namespace: str) -> str:
    """The load query of the ScaledObject the operator applied for `sleeper`, without its `or vector(0)`
    (which always returns a sample): its selector must match the routers' series as Prometheus labels them."""

    def applied() -> dict[str, Any] | None:
        found = ok.kubectl_try(
            "get", ok.KEDA_SCALED_OBJECTS, f"{FLEET}-sleeper", "-n", namespace, "-o", "json"
        )
        return json.loads(found.stdout) if found.returncode == 0 else None

    body = ok.wait_until(applied, 60, "the ScaledObject of sleeper")
    query: str = body["spec"]["triggers"][0]["metadata"]["query"]
    assert query.endswith(" or vector(0)"), query
    return query.removesuffix(" or vector(0)")


def _fill(expr: str, namespace: str) -> str:
    return expr.replace("$namespace", namespace).replace("$__range", "10m").replace("$__rate_interval", "1m")


def test_every_dashboard_and_alert_query_returns_series(
    flotilla_crds: None,
    keda_crds: None,
    operator_kubeconfig: Path,
    kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    cloud: str,
) -> None:
    metrics_port = free_port()
    operator = ok.OperatorProcess(
        operator_kubeconfig, tmp_path,
        args=("--namespace", namespace, "--metrics", f"http://127.0.0.1:{metrics_port}/metrics"),
        env={"FLOTILLA_AUTOSCALER_HOST_ALIASES": f"{HOST}=127.0.0.1",
             "FLOTILLA_ALLOWED_HTTP_PROVIDER_HOSTS": "cloud.invalid"},
    )  # fmt: skip
    # The chart as it would be installed in this namespace: its monitors, rules and metrics Service.
    chart = chartkit.template(
        namespace=namespace,
        values={"metrics.serviceMonitor.enabled": True, "metrics.podMonitor.enabled": True,
                "operator.watchNamespaces": [namespace]},
    )  # fmt: skip
    monitors = chartkit.by_kind(chart, "ServiceMonitor") + chartkit.by_kind(chart, "PodMonitor")
    assert len(monitors) == 3
    service = next(
        s for s in chartkit.by_kind(chart, "Service") if s["metadata"]["name"].endswith("-metrics")
    )
    ok.apply_doc(service)
    name = service["metadata"]["name"]
    ok.apply_doc(_slice(namespace, name, f"{name}-loopback", OPERATOR_HOST, "metrics", metrics_port))
    ok.apply_doc({"apiVersion": "v1", "kind": "ConfigMap", "data": {},
                  "metadata": {"name": f"{SQUATTED}-router", "namespace": namespace}})  # fmt: skip
    ok.apply_doc(_fleet(namespace))
    ok.apply_doc(_fleet(namespace, SQUATTED))
    operator.start()
    routers: list[Router] = []
    prometheus: promkit.Prometheus | None = None
    llama: llamakit.LlamaServer | None = None
    try:
        llama = llamakit.LlamaServer(tmp_path)
        config = _rendered_router_config(namespace, cloud, free_port(), llama.url)
        routers = [Router(n, config, tmp_path) for n in ("a", "b")]
        pods = _router_pods(namespace)
        for i, router in enumerate(routers):
            slice_name = f"{FLEET}-router-admin-{router.proc.name}"
            pod = pods[i % len(pods)]
            ok.apply_doc(
                _slice(namespace, f"{FLEET}-router-admin", slice_name, HOST, "admin", router.admin_port, pod)
            )
        pocket = promkit.ModelServer(namespace, FLEET, "pocket", llama.port)
        scrape = [promkit.scrape_config(m, kubeconfig, model_servers=[pocket]) for m in monitors]
        prometheus = promkit.Prometheus(scrape, [RULES], tmp_path)
        up = prometheus.wait_loopback_targets("servicemonitor/", 3)
        assert sorted(t["labels"]["service"] for t in up) == [
            name,
            f"{FLEET}-router-admin",
            f"{FLEET}-router-admin",
        ]
        assert all(t["labels"]["namespace"] == namespace for t in up)
        assert {t["labels"].get("fleet") for t in up} == {None, FLEET}  # the routers' relabeling

        # The PodMonitor finds the model pods through the apiserver, labelled by fleet, model and runtime.
        def model_targets() -> list[dict[str, str]] | None:
            assert prometheus is not None
            found = [t["labels"] for t in prometheus.targets() if t["scrapePool"].startswith("podmonitor/")]
            return found if any(t.get("model") == "coder" for t in found) else None

        labels = ok.wait_until(model_targets, 60, "the PodMonitor to discover coder's pod")
        coder = next(t for t in labels if t.get("model") == "coder")
        assert coder["fleet"] == FLEET and coder["runtime"] == "vllm" and coder["namespace"] == namespace
        # ... and scrapes pocket's (kwok) pod from the real llama-server, with the pod's labels.
        (served,) = prometheus.wait_loopback_targets("podmonitor/", 1)
        assert served["scrapeUrl"] == f"http://127.0.0.1:{llama.port}/metrics"
        assert {k: served["labels"].get(k) for k in ("namespace", "fleet", "model", "runtime")} == {
            "namespace": namespace,
            "fleet": FLEET,
            "model": "pocket",
            "runtime": "llamacpp",
        }
        assert served["labels"]["pod"].startswith(f"{FLEET}-pocket-")

        # Counters must exist in one scrape before they grow in the next, or rate() sees no increase.
        _traffic(routers)
        prom = prometheus
        ok.wait_until(lambda: len(prom.query("flotilla_router_in_flight")) >= 2 or None, 30,
                      "Prometheus to scrape both routers' series")  # fmt: skip
        exprs = {label: _fill(expr, namespace) for label, expr in _expressions().items()}
        exprs["KEDA ScaledObject query of sleeper"] = _keda_load_query(namespace)
        kv_cache = exprs.pop(KV_CACHE_PANEL)
        assert not prom.query(kv_cache), f"{KV_CACHE_PANEL} has data now: prove it like the other panels"
        exported = set(re.findall(r"^# TYPE (llamacpp:\w+)", llama.metrics(), re.MULTILINE))
        used = set(re.findall(r"\bllamacpp:\w+", json.dumps(_expressions())))
        assert used - exported == {"llamacpp:kv_cache_usage_ratio"}, (used, exported)
        empty: dict[str, str] = dict(exprs)
        deadline = time.monotonic() + 90  # the squatted fleet's reconcile is retried every 15 s
        while empty and time.monotonic() < deadline:
            _traffic(routers)
            time.sleep(2)
            empty = {label: expr for label, expr in empty.items() if not prom.query(expr)}
        listing = "\n".join(f"  {label}: {expr}" for label, expr in empty.items())
        assert not empty, f"{len(empty)} of {len(exprs)} queries returned no series:\n{listing}"
        # pocket's series carry its fleet and model, and its real completions move the tokens panel.
        rates = {(r["metric"].get("fleet"), r["metric"].get("model")): float(r["value"][1])
                 for r in prom.query(exprs[TOKENS_PANEL])}  # fmt: skip
        assert rates.get((FLEET, "pocket"), 0.0) > 0, rates

        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        assert len(rules) == 7 and all(r["health"] == "ok" for r in rules), rules
        assert {r["name"] for r in rules if r["state"] in ("pending", "firing")} == {
            r["name"] for r in rules
        }, "every alert's condition holds in this run, so each is pending (its `for` not yet over)"
    finally:
        if prometheus is not None:
            prometheus.stop()
        for router in routers:
            router.proc.stop()
        if llama is not None:
            llama.stop()
        operator.stop()
