"""Rendering the packing plan: pack pods replace packed models' own, their configs follow the plan.

Property-based for GPU packs: on every GPU of a pack pod the models' fractional `num_gpus` add up to at most
1, each model's `gpu_memory_utilization` is its `num_gpus`, and fraction x GPU memory is the model's planned
demand (floored to a thousandth of the pod's memory)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.api.fleet import ModelFleet
from flotilla.packing import plans
from flotilla.packserve.config import PackServeConfig
from flotilla.render import packconfigs
from flotilla.render.fleet import render_fleet

PRODUCTS = {"NVIDIA-L4": 24, "Tesla-T4": 16, "NVIDIA-A100-SXM4-80GB": 80}


def fleet(models: list[dict[str, Any]], **spec: Any) -> ModelFleet:
    body = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": "f", "namespace": "ns"},
        "spec": {"models": models, **spec},
    }
    return ModelFleet.from_body(body)


def cpu_model(name: str, memory: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"uri": f"pvc://gguf/{name}.gguf"},
        "runtime": "llamacpp",
        "placement": {"memory": memory},
        **extra,
    }


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_packed_models_get_no_pods_of_their_own_and_the_pack_config_follows_the_plan() -> None:
    models = [
        cpu_model("a", "250Mi", maxContextLength=1024),
        cpu_model("b", "300Mi", resources={"requests": {"cpu": "1500m"}}),
        cpu_model("c", "250Mi", maxContextLength=512),
        cpu_model("big", "1900Mi"),
        cpu_model("own", "250Mi", placement={"pack": "none"}),
    ]
    packs = [{"name": "small", "memory": "3Gi", "maxLoaded": 2}]
    packed = fleet(models, placement={"pack": "small"}, packs=packs)
    objects = by_key(render_fleet(packed))
    deployments = sorted(name for kind, name in objects if kind == "Deployment")
    assert deployments == ["f-own", "f-pack-small-1", "f-pack-small-2", "f-router"]
    plan = plans.plan(packed.spec)
    assert [(p.name, p.models) for p in plan.pods] == [("small-1", ("big",)), ("small-2", ("b", "a", "c"))]
    config = PackServeConfig.model_validate(
        yaml.safe_load(objects[("ConfigMap", "f-pack-small-2")]["data"]["pack.yaml"])
    )
    assert [(m.name, m.context_length, m.threads) for m in config.models] == [
        ("b", 4096, 2),
        ("a", 1024, 1),
        ("c", 512, 1),
    ]
    assert str(config.models[1].gguf) == "/models/a/a.gguf"
    assert config.max_loaded == 2
    deployment = objects[("Deployment", "f-pack-small-2")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("flotilla-ray:")
    assert container["command"] == ["flotilla", "pack-serve", "--config", "/etc/flotilla-pack/pack.yaml"]
    assert container["resources"]["requests"]["cpu"] == "3500m"  # what they asked (threads: 2 + 1 + 1)
    assert deployment["metadata"]["annotations"]["flotilla.dev/pack-models"] == "b,a,c"
    router = yaml.safe_load(objects[("ConfigMap", "f-router")]["data"]["router.yaml"])
    services = {m["name"]: m["service"] for m in router["models"]}
    assert services["a"] == {"namespace": "ns", "name": "f-pack-small-2", "port": 8000, "path": "/a"}
    assert services["own"] == {"namespace": "ns", "name": "f-own", "port": 8080, "path": ""}
    # Opting out again brings the models' own pods back and the pack's go.
    unpacked = by_key(render_fleet(fleet(models)))
    assert not [name for _, name in unpacked if "pack" in name]
    assert {("Deployment", f"f-{n}") for n in ("a", "b", "c", "big", "own")} <= set(unpacked)


def test_a_changed_pack_config_rolls_the_pack_pods() -> None:
    def digest(context: int) -> str:
        models = [cpu_model(n, "250Mi", maxContextLength=context) for n in ("a", "b")]
        objects = by_key(render_fleet(fleet(models, placement={"pack": "auto"})))
        template = objects[("Deployment", "f-pack-auto-1")]["spec"]["template"]
        return str(template["metadata"]["annotations"]["flotilla.dev/config-sha256"])

    assert digest(1024) == digest(1024) != digest(2048)


@st.composite
def gpu_fleets(draw: st.DrawFn) -> ModelFleet:
    count = draw(st.integers(1, 8))
    models = []
    for index in range(count):
        product = draw(st.sampled_from(sorted(PRODUCTS)))
        models.append(
            {
                "name": f"m{index}",
                "source": {"uri": f"hf://org/model-{index}"},
                "runtime": "vllm",
                "accelerator": {"gpus": draw(st.sampled_from([1, 1, 2])), "product": product},
                "placement": {"memory": f"{draw(st.integers(100, 30_000))}Mi"},
                "maxContextLength": draw(st.sampled_from([1024, 2048, 4096, 8192])),
                "autoscaling": {"targetInFlight": draw(st.integers(1, 8))},
            }
        )
    return fleet(models, placement={"pack": "auto"})


@settings(max_examples=200, deadline=None)
@given(gpu_fleets())
def test_gpu_fractions_add_up_to_at_most_one_per_gpu_and_match_the_planned_memory(packed: ModelFleet) -> None:
    plan = plans.plan(packed.spec)
    objects = by_key(render_fleet(packed))
    for pod in plan.pods:
        config = yaml.safe_load(objects[("ConfigMap", f"f-pack-{pod.name}")]["data"]["serve.yaml"])
        per_gpu = [0.0] * pod.kind.gpus
        assert [app["name"] for app in config["applications"]] == list(pod.models)
        for app in config["applications"]:
            (llm,) = app["args"]["llm_configs"]
            bundles = llm["placement_group_config"]["bundles"]
            assert len(bundles) == pod.kind.gpus
            fraction = llm["engine_kwargs"]["gpu_memory_utilization"]
            assert all(bundle == {"GPU": fraction} for bundle in bundles)
            per_gpu = [used + fraction for used in per_gpu]
            demand = plan.demands[app["name"]].total
            assert 0 <= demand - fraction * pod.budget.capacity <= pod.budget.capacity / 1000
            assert app["route_prefix"] == f"/{app['name']}"
        assert all(used <= 1.0 + 1e-9 for used in per_gpu), per_gpu
        deployment = objects[("Deployment", f"f-pack-{pod.name}")]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == str(pod.kind.gpus)
        selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
        assert selector["nvidia.com/gpu.product"] == pod.kind.product


def test_gpu_fraction_is_floored_to_a_thousandth() -> None:
    models = [
        {"name": "a", "source": {"uri": "hf://o/a"}, "runtime": "vllm",
         "accelerator": {"gpus": 1, "product": "NVIDIA-L4"}, "placement": {"memory": "1Gi"}},
    ]  # fmt: skip
    packed = fleet(models, placement={"pack": "auto"})
    plan = plans.plan(packed.spec)
    (pod,) = plan.pods
    fraction = packconfigs.gpu_fraction(pod, plan.demands["a"])
    assert fraction == int(plan.demands["a"].total * 1000 / (24 * 2**30)) / 1000


def test_a_packed_model_keeps_its_chat_format() -> None:
    """CHAT_FORMAT, which llama-cpp-python's own server reads from a model pod's env, reaches pack-serve's
    config (Gemma 3 270M's GGUF template is not picked up: without it the model answers nothing)."""
    chatty = cpu_model("a", "250Mi", env=[{"name": "CHAT_FORMAT", "value": "gemma"}])
    objects = by_key(render_fleet(fleet([chatty, cpu_model("b", "250Mi")], placement={"pack": "auto"})))
    config = yaml.safe_load(objects[("ConfigMap", "f-pack-auto-1")]["data"]["pack.yaml"])
    assert {m["name"]: m.get("chatFormat") for m in config["models"]} == {"a": "gemma", "b": None}
