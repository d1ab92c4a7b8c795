"""The chart's dashboard and alert rules against a real Prometheus scraping real routers and the operator.

What is real: Prometheus 3 (built from source by `e2e/cluster build`), discovering its targets through
the apiserver with the chart's own ServiceMonitors and PodMonitor (promkit.scrape_config translates them
as prometheus-operator does) and evaluating the chart's rules file; two `flotilla router` processes
running the router config the operator rendered; the `flotilla operator` process (`--metrics`); the
stand-in cloud provider, which also stands in for the fleet's one working local model.

What is not: the router and operator pods (kwok runs no process): the processes run on loopback and are
published in EndpointSlices under `*.flotilla.test` host names that the scrape config maps to 127.0.0.1.
The rendered router config gets static upstream URLs instead of EndpointSlice discovery (a kwok pod's IP
answers nothing): `coder` -> the stand-in, `broken` -> a closed port, `sleeper` (scaled to zero) -> none.
The model pods are discovered by the PodMonitor but not scraped (kwok pods serve no /metrics).

Traffic makes every series the queries need: answers from `coder` (tokens, dollars saved), connection
errors on `broken` until its circuit breaker opens, spills of the cold `sleeper`, a 503 from the cloud
itself (a 5xx to the client), cloud spend; `broken`'s pod cannot be scheduled (not ready), and a second
fleet whose router ConfigMap name is taken keeps failing to reconcile.
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
    """One round: a served request, a failing local model, a cold spill, a 5xx from the cloud itself."""
    for router in routers:
        assert router.ask("code") == 200
        assert router.ask("math") == 200  # broken -> frontier (error, then unavailable: breaker open)
        assert router.ask("chat") == 200  # sleeper is cold -> frontier (cold)
        assert router.ask("", "[standin status=503] fail", model="frontier") >= 500


def _rendered_router_config(namespace: str, cloud: str, closed_port: int) -> dict[str, Any]:
    def rendered() -> dict[str, Any] | None:
        done = ok.kubectl_try("get", "configmap", f"{FLEET}-router", "-n", namespace, "-o", "json")
        return json.loads(done.stdout) if done.returncode == 0 else None

    config: dict[str, Any] = yaml.safe_load(
        ok.wait_until(rendered, 60, "the router ConfigMap")["data"]["router.yaml"]
    )
    endpoints = {"coder": [cloud], "broken": [f"http://127.0.0.1:{closed_port}"], "sleeper": []}
    for model in config["models"]:
        model.pop("service", None)
        model["endpoints"] = endpoints[model["name"]]
    assert [m["scaleFromZero"] for m in config["models"]] == [False, False, True]
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
    try:
        config = _rendered_router_config(namespace, cloud, free_port())
        routers = [Router(n, config, tmp_path) for n in ("a", "b")]
        pods = _router_pods(namespace)
        for i, router in enumerate(routers):
            slice_name = f"{FLEET}-router-admin-{router.proc.name}"
            pod = pods[i % len(pods)]
            ok.apply_doc(
                _slice(namespace, f"{FLEET}-router-admin", slice_name, HOST, "admin", router.admin_port, pod)
            )
        scrape = [promkit.scrape_config(m, kubeconfig) for m in monitors]
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

        # Counters must exist in one scrape before they grow in the next, or rate() sees no increase.
        _traffic(routers)
        prom = prometheus
        ok.wait_until(lambda: len(prom.query("flotilla_router_in_flight")) >= 2 or None, 30,
                      "Prometheus to scrape both routers' series")  # fmt: skip
        exprs = {label: _fill(expr, namespace) for label, expr in _expressions().items()}
        exprs["KEDA ScaledObject query of sleeper"] = _keda_load_query(namespace)
        empty: dict[str, str] = dict(exprs)
        deadline = time.monotonic() + 90  # the squatted fleet's reconcile is retried every 15 s
        while empty and time.monotonic() < deadline:
            _traffic(routers)
            time.sleep(2)
            empty = {label: expr for label, expr in empty.items() if not prom.query(expr)}
        listing = "\n".join(f"  {label}: {expr}" for label, expr in empty.items())
        assert not empty, f"{len(empty)} of {len(exprs)} queries returned no series:\n{listing}"

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
        operator.stop()
