"""render_fleet: labels, names, replicas ownership, HPA/PDB rules, GPU placement, determinism."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from flotilla.api.fleet import ModelFleet
from flotilla.render import naming
from flotilla.render.fleet import model_deployment_name, render_fleet, router_endpoint

BODY: dict[str, Any] = {
    "apiVersion": "flotilla.dev/v1alpha1",
    "kind": "ModelFleet",
    "metadata": {"name": "f", "namespace": "ns", "uid": "u-1", "generation": 4},
    "spec": {
        "models": [
            {
                "name": "gpu",
                "source": {"uri": "hf://org/repo"},
                "runtime": "vllm",
                "accelerator": {"gpus": 1, "product": "NVIDIA-L4"},
                "replicas": {"min": 1, "max": 3},
                "autoscaling": {"mode": "hpa"},
            },
            {"name": "cpu", "source": {"uri": "pvc://c/m.gguf"}, "runtime": "llamacpp"},
        ],
        "fallbacks": [
            {
                "name": "cloud",
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "apiKey": {"secretKeyRef": {"name": "anthropic", "key": "key"}},
            }
        ],
    },
}


def fleet(**spec_changes: Any) -> ModelFleet:
    body = copy.deepcopy(BODY)
    body["spec"].update(spec_changes)
    return ModelFleet.from_body(body)


def by_kind_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_every_child_is_labelled_namespaced_and_unowned() -> None:
    objects = render_fleet(fleet())
    assert objects
    for obj in objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "ns"
        assert "ownerReferences" not in meta
        labels = meta["labels"]
        assert labels[naming.MANAGED_BY] == "flotilla"
        assert labels[naming.FLEET] == "f"
        assert labels[naming.COMPONENT] in ("model", "router")
        if labels[naming.COMPONENT] == "model":
            assert labels[naming.MODEL] in ("gpu", "cpu")
        assert obj["apiVersion"] and obj["kind"]


def test_rendering_is_deterministic() -> None:
    assert render_fleet(fleet()) == render_fleet(fleet())


def test_children_and_order() -> None:
    kinds = [(o["kind"], o["metadata"]["name"]) for o in render_fleet(fleet())]
    assert kinds == [
        ("Deployment", "f-gpu"),
        ("Service", "f-gpu"),
        ("HorizontalPodAutoscaler", "f-gpu"),
        ("PodDisruptionBudget", "f-gpu"),
        ("Deployment", "f-cpu"),
        ("Service", "f-cpu"),
        ("ServiceAccount", "f-router"),
        ("Role", "f-router"),
        ("RoleBinding", "f-router"),
        ("ConfigMap", "f-router"),
        ("Deployment", "f-router"),
        ("Service", "f-router"),
        ("Service", "f-router-admin"),
    ]


def test_service_selects_the_pods_of_its_deployment() -> None:
    objects = by_kind_name(render_fleet(fleet()))
    for name in ("f-gpu", "f-cpu", "f-router"):
        deployment, service = objects[("Deployment", name)], objects[("Service", name)]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert service["spec"]["selector"].items() <= pod_labels.items()
        ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert service["spec"]["ports"][0]["targetPort"] in ports


def test_autoscaled_deployment_leaves_replicas_to_the_hpa() -> None:
    objects = by_kind_name(render_fleet(fleet()))
    assert "replicas" not in objects[("Deployment", "f-gpu")]["spec"]
    hpa = objects[("HorizontalPodAutoscaler", "f-gpu")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 3)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "f-gpu"}
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert objects[("Deployment", "f-cpu")]["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("replicas", "autoscaling", "hpa", "pdb", "deployment_replicas"),
    [
        ({"min": 1}, {"mode": "none"}, False, False, 1),
        ({"min": 2}, {"mode": "none"}, False, True, 2),
        ({"min": 0}, {"mode": "none"}, False, False, 0),
        ({"min": 1, "max": 3}, {"mode": "none"}, False, False, 1),
        ({"min": 2, "max": 2}, {"mode": "hpa"}, False, True, 2),
        ({"min": 1, "max": 2}, {"mode": "hpa"}, True, True, None),
        ({"min": 1, "max": 3}, {"mode": "builtin"}, False, True, None),
        ({"min": 0, "max": 1}, {"mode": "builtin"}, False, False, None),
        ({"min": 0, "max": 2}, {}, False, True, None),  # builtin is the default
        ({"min": 2, "max": 2}, {"mode": "builtin"}, False, True, 2),
        ({"min": 0}, {"mode": "builtin"}, False, False, 0),  # parked: no max, nothing to scale to
        ({"min": 0, "max": 3}, {"mode": "keda"}, False, True, None),
    ],
)
def test_hpa_and_pdb_rules(
    replicas: dict[str, int],
    autoscaling: dict[str, str],
    hpa: bool,
    pdb: bool,
    deployment_replicas: int | None,
) -> None:
    model = {"name": "m", "source": {"uri": "pvc://c/m.gguf"}, "runtime": "llamacpp"}
    objects = by_kind_name(
        render_fleet(fleet(models=[{**model, "replicas": replicas, "autoscaling": autoscaling}]))
    )
    assert (("HorizontalPodAutoscaler", "f-m") in objects) is hpa
    assert (("PodDisruptionBudget", "f-m") in objects) is pdb
    deployment = objects[("Deployment", "f-m")]
    assert deployment["spec"].get("replicas") == deployment_replicas
    # exactly one of: a rendered count, or the count an autoscaled Deployment is created with (its min)
    initial = (deployment["metadata"].get("annotations") or {}).get("flotilla.dev/initial-replicas")
    assert initial == (None if deployment_replicas is not None else str(replicas["min"]))


@pytest.mark.parametrize(("low", "idle", "keda_min"), [(0, 0, 1), (2, None, 2)])
def test_keda_scaled_object(low: int, idle: int | None, keda_min: int) -> None:
    model = {
        "name": "m",
        "source": {"uri": "pvc://c/m.gguf"},
        "runtime": "llamacpp",
        "replicas": {"min": low, "max": 4},
        "autoscaling": {"mode": "keda", "targetInFlight": 6, "window": "15s", "scaleDownDelay": "2m"},
    }
    objects = by_kind_name(render_fleet(fleet(models=[model])))
    scaled = objects[("ScaledObject", "f-m")]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec.get("idleReplicaCount") == idle
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (keda_min, 4)
    assert spec["scaleTargetRef"]["name"] == "f-m"
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (15, 120)
    trigger = spec["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["threshold"] == "6"
    query = trigger["metadata"]["query"]
    assert 'model="m"' in query and 'pod=~"f-router-.+"' in query
    assert "flotilla_router_in_flight|flotilla_router_queued" in query
    assert "replicas" not in objects[("Deployment", "f-m")]["spec"]
    assert ("HorizontalPodAutoscaler", "f-m") not in objects


def test_gpu_placement() -> None:
    objects = by_kind_name(render_fleet(fleet()))
    pod = objects[("Deployment", "f-gpu")]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    cpu_pod = objects[("Deployment", "f-cpu")]["spec"]["template"]["spec"]
    assert "tolerations" not in cpu_pod and "nodeSelector" not in cpu_pod


def test_pods_run_restricted() -> None:
    for obj in render_fleet(fleet()):
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["readOnlyRootFilesystem"] is True


def test_router_gets_keys_only_by_secret_reference() -> None:
    objects = by_kind_name(render_fleet(fleet()))
    container = objects[("Deployment", "f-router")]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "flotilla", "router", "--config", "/etc/flotilla/router.yaml", "--host", "0.0.0.0", "--port", "8080",
        "--admin-port", "9090",
    ]  # fmt: skip
    keys = [e for e in container["env"] if e["name"].startswith("FLOTILLA_API_KEY_")]
    assert keys == [
        {"name": "FLOTILLA_API_KEY_CLOUD", "valueFrom": {"secretKeyRef": {"name": "anthropic", "key": "key"}}}
    ]
    assert all("value" not in e for e in keys)
    assert [p["name"] for p in objects[("Service", "f-router")]["spec"]["ports"]] == ["http"]
    assert objects[("Service", "f-router")]["spec"]["ports"][0]["port"] == 8080
    admin = objects[("Service", "f-router-admin")]["spec"]  # metrics and upstreams: never exposed
    assert admin["type"] == "ClusterIP" and admin["ports"][0]["targetPort"] == "admin"


def test_access_keys_reach_the_router_config_only_as_hashes() -> None:
    body = copy.deepcopy(BODY)
    body["spec"]["access"] = {
        "keys": [
            {"name": "web", "secretRef": {"name": "keys", "key": "web"}, "limits": {"requestsPerMinute": 5}},
            {"name": "missing", "secretRef": {"name": "keys", "key": "gone"}},
        ]
    }
    digest = "a" * 64
    objects = by_kind_name(render_fleet(ModelFleet.from_body(body), key_hashes={"web": digest}))
    config = yaml.safe_load(objects[("ConfigMap", "f-router")]["data"]["router.yaml"])
    assert config["access"]["keys"] == [
        {"name": "web", "sha256": digest, "tasks": [], "models": [], "cloudFallbacks": False,
         "limits": {"requestsPerMinute": 5, "tokensPerMinute": None, "concurrentRequests": None},
         "monthlyBudgetUSD": None, "onBudgetExhausted": "downgrade", "capture": True},
    ]  # fmt: skip
    assert config["access"]["spendFile"] == "/etc/flotilla-spend/spend.json"
    pod = objects[("Deployment", "f-router")]["spec"]["template"]["spec"]
    assert {"name": "spend", "configMap": {"name": "f-router-spend", "optional": True}} in pod["volumes"]
    env = pod["containers"][0]["env"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in env


def test_names_and_endpoint() -> None:
    parsed = fleet()
    assert model_deployment_name(parsed, "gpu") == "f-gpu"
    assert model_deployment_name(parsed, parsed.spec.models[1]) == "f-cpu"
    assert router_endpoint(parsed) == "http://f-router.ns.svc:8080/v1"
    assert naming.api_key_env("my-cloud") == "FLOTILLA_API_KEY_MY_CLOUD"


def test_longest_names_fit_kubernetes_limits() -> None:
    body = copy.deepcopy(BODY)
    body["metadata"]["name"] = "f" * 30
    body["spec"]["models"][1]["name"] = "m" * 32
    for obj in render_fleet(ModelFleet.from_body(body)):
        assert len(obj["metadata"]["name"]) <= 63
