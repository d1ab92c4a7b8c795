"""The chart's alert rules: `promtool check rules` (the promtool of the Prometheus e2e/cluster builds) on
the plain rules file and on the PrometheusRule the chart renders from it, and every Flotilla metric the
rules and the dashboard name is one the router, the autoscaler or the operator exports.

Whether each expression returns series against live targets is tests/integration/test_observability.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import chartkit
import yaml
from prometheus_client import CollectorRegistry

from clusterlib import settings
from flotilla.autoscaler.metrics import AutoscalerMetrics
from flotilla.controller.metrics import OperatorMetrics
from flotilla.router.metrics import Metrics

RULES = chartkit.CHART / "rules" / "flotilla.rules.yaml"
RULES_TEST = Path(__file__).resolve().parent / "rules.test.yaml"
ALERTS = {
    "FlotillaRouterErrorRatioHigh",
    "FlotillaFallbackRatioHigh",
    "FlotillaCircuitBreakerOpen",
    "FlotillaColdSpills",
    "FlotillaCloudSpendHigh",
    "FlotillaOperatorReconcileErrors",
    "FlotillaModelPodsNotReady",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """The pinned promtool; a clear failure (not a skip) when it has not been built yet."""
    path = settings.load().binary("promtool")
    if not path.exists():
        raise AssertionError(f"{path} is missing: run `e2e/cluster build --only prometheus` first")
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60, check=False)


def _rendered_rule() -> dict[str, object]:
    objects = chartkit.template(values={"metrics.prometheusRule.enabled": True})
    rule: dict[str, object] = dict(chartkit.only(objects, "PrometheusRule"))
    return rule


def test_promtool_accepts_the_rules_file_and_the_rendered_prometheus_rule(tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.rules.yaml"
    rendered.write_text(yaml.safe_dump(_rendered_rule()["spec"]))
    done = promtool("check", "rules", str(RULES), str(rendered))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout, done.stdout


def test_promtool_unit_tests_fire_each_alert_for_the_failing_fleet_only() -> None:
    """rules.test.yaml: synthetic series for a failing fleet (every alert fires, with its expanded summary)
    and a healthy one (none fires); nothing fires before its `for` is over."""
    done = promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr
    tested = {t["alertname"] for t in yaml.safe_load(RULES_TEST.read_text())["tests"][0]["alert_rule_test"]}
    assert tested == ALERTS


def test_promtool_is_the_pinned_release() -> None:
    minor = int(settings.load().pins.prometheus.split(".")[1])  # module v0.316.0 is Prometheus 3.16.0
    done = promtool("--version")
    assert f"promtool, version {minor // 100}.{minor % 100}." in done.stdout, done.stdout


def test_promtool_refuses_a_broken_expression(tmp_path: Path) -> None:
    """The check has teeth: a rules file with an unparsable PromQL expression fails it."""
    broken = yaml.safe_load(RULES.read_text())
    broken["groups"][0]["rules"][0]["expr"] = "sum by (namespace (rate(flotilla_router_requests_total[5m]))"
    path = tmp_path / "broken.rules.yaml"
    path.write_text(yaml.safe_dump(broken))
    done = promtool("check", "rules", str(path))
    assert done.returncode != 0 and "parse error" in done.stdout + done.stderr


def test_the_prometheus_rule_is_the_rules_file_and_off_by_default() -> None:
    assert not chartkit.by_kind(chartkit.template(), "PrometheusRule")
    assert _rendered_rule()["spec"] == yaml.safe_load(RULES.read_text())
    names = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert names == ALERTS


def _exported() -> set[str]:
    """Sample names (with _total/_bucket suffixes) of every Flotilla metric family, on a fresh registry."""
    names: set[str] = set()
    registry = CollectorRegistry()
    AutoscalerMetrics(registry)
    OperatorMetrics(registry)
    for family in [*Metrics().registry.collect(), *registry.collect()]:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_rules_and_dashboard_query_only_exported_metrics() -> None:
    configmap = chartkit.only(chartkit.template(), "ConfigMap")
    dashboard = json.loads(configmap["data"]["flotilla.json"])
    text = RULES.read_text() + json.dumps(dashboard)
    used = set(re.findall(r"\bflotilla_[a-z_]+", text))
    assert {"flotilla_operator_model_replicas", "flotilla_operator_reconciles_total"} <= used
    assert used <= _exported(), sorted(used - _exported())


def test_pod_monitor_scrapes_the_model_servers_metrics_port() -> None:
    objects = chartkit.template(values={"metrics.podMonitor.enabled": True})
    monitor = chartkit.only(objects, "PodMonitor")
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "flotilla",
        "flotilla.dev/component": "model",
    }
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert {r["targetLabel"] for r in endpoint["relabelings"]} == {"fleet", "model", "runtime"}
