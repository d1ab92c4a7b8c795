"""What the chart renders, checked against the code it deploys: CRDs, RBAC, settings, dashboard metrics.

Each test ties the chart to its source of truth, so a change on one side that the other misses fails here.
"""

from __future__ import annotations

import json
import re

import chartkit
import pytest
import yaml

from flotilla.api import commands as api_commands
from flotilla.render import settings
from flotilla.router import metrics

RBAC_EXAMPLE = chartkit.ROOT / "examples" / "rbac" / "operator.yaml"


def test_lint_is_clean_for_defaults_and_every_golden_case() -> None:
    for values in [None, *sorted(chartkit.GOLDEN.glob("*/values.yaml"))]:
        args = ["lint", "--strict", str(chartkit.CHART)] + (["--values", str(values)] if values else [])
        done = chartkit.helm(*args)
        assert "0 chart(s) failed" in done.stdout, done.stdout
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


def test_chart_crds_are_the_generated_crds() -> None:
    """charts/flotilla/crds/ must equal crds/ byte for byte (scripts/generate writes both)."""
    top = sorted(p.name for p in (chartkit.ROOT / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (chartkit.CHART / "crds").glob("*.yaml"))
    assert chart == top
    for name in top:
        chart_text = (chartkit.CHART / "crds" / name).read_text()
        assert chart_text == (chartkit.ROOT / "crds" / name).read_text(), f"run scripts/generate ({name})"
        assert chart_text == api_commands.dump_crds(), "run scripts/generate"


def _example_rules() -> list[dict[str, object]]:
    docs = list(yaml.safe_load_all(RBAC_EXAMPLE.read_text()))
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    rules: list[dict[str, object]] = role["rules"]
    return rules


def test_cluster_rbac_equals_the_tested_example_and_reads_secrets_only_by_name() -> None:
    """The integration tests run the operator under examples/rbac/operator.yaml; the chart grants the same."""
    objects = chartkit.template()
    role = chartkit.only(objects, "ClusterRole")
    assert role["rules"] == _example_rules()
    binding = chartkit.only(objects, "ClusterRoleBinding")
    account = chartkit.only(objects, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "flotilla-system"}
    ]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert not {"nodes", "namespaces"} & set(rule["resources"]), rule
        if "pods" in rule["resources"]:  # read only: why the scheduler cannot place a fleet's pod
            assert rule["resources"] == ["pods"] and rule["verbs"] == ["get", "list", "watch"], rule
        if "secrets" in rule["resources"]:  # spec.access keys: get by name, never list or watch
            assert rule["resources"] == ["secrets"] and rule["verbs"] == ["get"], rule
        assert rule["apiGroups"] != ["apiextensions.k8s.io"]


def test_listed_namespaces_get_roles_and_nothing_cluster_scoped() -> None:
    objects = chartkit.template(values={"operator.watchNamespaces": ["ai", "ml", "ai"]})
    assert not chartkit.by_kind(objects, "ClusterRole") and not chartkit.by_kind(
        objects, "ClusterRoleBinding"
    )
    roles = chartkit.by_kind(objects, "Role")
    bindings = chartkit.by_kind(objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ai", "ml"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ai", "ml"]
    assert all(r["rules"] == _example_rules() for r in roles)
    args = chartkit.only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace") or a == "--all-namespaces"] == [
        "--namespace=ai",
        "--namespace=ml",
    ]


def test_every_operator_setting_is_a_value() -> None:
    """Each FLOTILLA_* variable of docs/reference/settings.md comes from values; `load()` accepts them."""
    variables = set(re.findall(r"`(FLOTILLA_[A-Z_]+)`", settings.settings_reference()))
    overrides = {
        "runtimes.vllm.image": "example.com/vllm:1",
        "runtimes.llamacpp.image": "flotilla-llamacpp:0.1.0",
        "runtimes.llamacpp.flavor": "llama-cpp-python",
        "runtimes.imagePullPolicy": "Never",
        "router.image": "example.com/router:2",
        "runtimes.ray.image": "example.com/flotilla-ray:3",
        "runtimes.ray.vllmImage": "example.com/flotilla-ray-vllm:3",
        "runtimes.finetune.gpuImage": "example.com/flotilla-finetune-gpu:4",
    }
    env = chartkit.container_env(chartkit.only(chartkit.template(values=overrides), "Deployment"))
    assert variables <= set(env), f"settings without a chart value: {sorted(variables - set(env))}"
    loaded = settings.load({k: v for k, v in env.items() if k.startswith("FLOTILLA_")})
    assert loaded.runtimes.vllm_image == "example.com/vllm:1"
    assert loaded.runtimes.llamacpp_image == "flotilla-llamacpp:0.1.0"
    assert loaded.runtimes.llamacpp_flavor == "llama-cpp-python"
    assert loaded.runtimes.image_pull_policy == "Never"
    assert loaded.router_image == "example.com/router:2"
    assert (loaded.ray_image, loaded.ray_vllm_image) == (
        "example.com/flotilla-ray:3",
        "example.com/flotilla-ray-vllm:3",
    )
    assert loaded.finetune_gpu_image == "example.com/flotilla-finetune-gpu:4"


def test_pack_images_default_to_the_operators_settings() -> None:
    env = chartkit.container_env(chartkit.only(chartkit.template(), "Deployment"))
    assert "FLOTILLA_RAY_IMAGE" not in env and "FLOTILLA_RAY_VLLM_IMAGE" not in env
    assert settings.load({}).ray_image.startswith("flotilla-ray:")
    assert "FLOTILLA_FINETUNE_GPU_IMAGE" not in env
    assert settings.load({}).finetune_gpu_image.startswith("flotilla-finetune-gpu:")


def test_router_image_defaults_to_the_operator_image() -> None:
    deployment = chartkit.only(chartkit.template(values={"image.tag": "9.9.9"}), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "flotilla:9.9.9"
    assert chartkit.container_env(deployment)["FLOTILLA_ROUTER_IMAGE"] == "flotilla:9.9.9"


def test_operator_pod_is_non_root_and_read_only() -> None:
    spec = chartkit.only(chartkit.template(), "Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["command"] == ["flotilla", "operator"]


def test_service_monitors_are_off_by_default_and_scrape_routers_and_operator_when_on() -> None:
    assert not chartkit.by_kind(chartkit.template(), "ServiceMonitor")
    monitors = {
        m["metadata"]["name"]: m
        for m in chartkit.by_kind(
            chartkit.template(values={"metrics.serviceMonitor.enabled": True}), "ServiceMonitor"
        )
    }
    routers = next(m for name, m in monitors.items() if name.endswith("-routers"))
    assert routers["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "flotilla",
        "flotilla.dev/component": "router",
    }
    assert routers["spec"]["endpoints"][0]["path"] == "/metrics"
    operator = next(m for name, m in monitors.items() if name.endswith("-operator"))
    assert operator["spec"]["endpoints"][0]["port"] == "metrics"
    assert operator["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"


def test_metrics_port_is_served_and_exposed() -> None:
    objects = chartkit.template(values={"metrics.port": 9191, "metrics.service.port": 9292})
    container = chartkit.only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics=http://0.0.0.0:9191/metrics" in container["args"]
    assert {"name": "metrics", "containerPort": 9191, "protocol": "TCP"} in container["ports"]
    service = next(
        s for s in chartkit.by_kind(objects, "Service") if s["metadata"]["name"].endswith("-metrics")
    )
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9292, "targetPort": "metrics", "protocol": "TCP"}
    ]


def _dashboard() -> dict[str, object]:
    configmap = chartkit.only(chartkit.template(), "ConfigMap")
    dashboard: dict[str, object] = json.loads(configmap["data"]["flotilla.json"])
    return dashboard


def test_dashboard_queries_only_metrics_the_router_exports() -> None:
    exported = {m.name for m in metrics.Metrics().registry.collect()}
    text = json.dumps(_dashboard())
    used = set(re.findall(r"flotilla_router_[a-z_]+", text))
    assert used, "the dashboard queries no router metric"
    for name in used:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert base in exported, f"dashboard uses {name}, the router exports {sorted(exported)}"
    counters = {m.name for m in metrics.Metrics().registry.collect() if m.type == "counter"}
    for name in used:
        if name.removesuffix("_total") in counters:
            assert name.endswith("_total"), f"{name}: counters are exported with a _total suffix"


@pytest.mark.parametrize(
    "topic",
    ["requests", "latency", "fallbacks", "tokens", "dollars saved", "replicas per model"],
)
def test_dashboard_has_a_panel_per_topic(topic: str) -> None:
    titles = [str(panel["title"]).lower() for panel in _dashboard()["panels"]]  # type: ignore[attr-defined]
    assert any(topic in title for title in titles), titles


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("operator.logLevel=LOUD", "value must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
        ("operator.watchNamespaces[0]=Not_A_Namespace", "does not match pattern"),
        ("runtimes.llamacpp.flavor=llama", "value must be one of 'llama-server', 'llama-cpp-python'"),
        ("operatr.logLevel=INFO", "additional properties 'operatr' not allowed"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(flag: str, message: str) -> None:
    done = chartkit.helm("template", "x", str(chartkit.CHART), "--set", flag, check=False)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
