"""The packing plan: memory demand, budgets and first-fit-decreasing, on fleets parsed like the operator
parses them. Property-based: never over budget, never more pods than models, deterministic, every opted-in
model placed exactly once."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.api.fleet import ModelFleet, ModelFleetSpec
from flotilla.packing import budgets, memory, plans

GIB, MIB, KIB = memory.GIB, memory.MIB, memory.KIB


def cpu_model(name: str, memory_hint: str | None = "300Mi", **extra: Any) -> dict[str, Any]:
    model: dict[str, Any] = {
        "name": name,
        "source": {"uri": "pvc://gguf/gemma-3-270m-it-Q4_K_M.gguf"},
        "runtime": "llamacpp",
        "quantization": "Q4_K_M",
        "placement": {"pack": "auto"},
        **extra,
    }
    if memory_hint:
        model["placement"]["memory"] = memory_hint
    return model


def gpu_model(name: str, memory_hint: str, product: str | None = "NVIDIA-L4", **extra: Any) -> dict[str, Any]:
    accelerator: dict[str, Any] = {"gpus": 1, **({"product": product} if product else {})}
    return {
        "name": name,
        "source": {"uri": "hf://Qwen/Qwen2.5-1.5B-Instruct"},
        "runtime": "vllm",
        "accelerator": accelerator,
        "placement": {"pack": "auto", "memory": memory_hint},
        **extra,
    }


def spec(models: list[dict[str, Any]], **extra: Any) -> ModelFleetSpec:
    body = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ModelFleet",
        "metadata": {"name": "packed"},
        "spec": {"models": models, **extra},
    }
    return ModelFleet.from_body(body).spec


def test_three_small_cpu_models_share_one_pod_and_a_fourth_that_does_not_fit_gets_a_second() -> None:
    models = [cpu_model(n, maxContextLength=2048) for n in ("a", "b", "c")]
    models.append(cpu_model("d", "1200Mi", maxContextLength=2048))
    for model in models:
        del model["placement"]["pack"]  # the fleet's default: the named pack
    plan = plans.plan(spec(models, packs=[{"name": "cpu", "memory": "2Gi"}], placement={"pack": "cpu"}))
    assert [(p.name, p.models) for p in plan.pods] == [("cpu-1", ("d",)), ("cpu-2", ("a", "b", "c"))]
    assert all(p.used <= p.budget.usable for p in plan.pods)
    assert plan.pods[0].budget.usable == 2 * GIB * 90 // 100  # the default 10 % safety margin
    assert not plan.unplaced


def test_demand_is_weights_plus_kv_cache_plus_overhead() -> None:
    cpu = plans.plan(spec([cpu_model("a", "1Gi", maxContextLength=8192)])).demands["a"]
    # Q4_K_M: 4.5 bits a parameter, so 1 GiB holds ~1.9 B parameters: 32 KiB x 1.91 per token.
    per_token = round(32 * KIB * (GIB / (4.5 / 8) / 1e9))
    assert (cpu.weights, cpu.weights_from, cpu.overhead) == (GIB, "hint", 256 * MIB)
    assert cpu.kv_cache == per_token * 8192  # llama.cpp: one context shared by its slots
    gpu = plans.plan(spec([gpu_model("g", "3Gi", maxContextLength=4096, maxInFlight=4)])).demands["g"]
    assert gpu.kv_cache == round(32 * KIB * 3 * GIB / 2 / 1e9) * 4096 * 4  # vLLM: x min(maxInFlight, target)
    tiny = plans.plan(spec([cpu_model("t", "100Mi")])).demands["t"]
    assert tiny.kv_cache == memory.KV_BYTES_FLOOR * memory.DEFAULT_CONTEXT


def test_known_artefact_size_wins_over_the_hint() -> None:
    plan = plans.plan(spec([cpu_model("a", "8Gi")]), artefact_bytes={"a": 200 * MIB})
    assert plan.demands["a"].weights == 200 * MIB and plan.demands["a"].weights_from == "artefact"


def test_models_of_different_accelerator_kinds_never_share_a_pod() -> None:
    plan = plans.plan(
        spec([cpu_model("c"), gpu_model("l4", "1Gi", maxContextLength=2048),
              gpu_model("a100", "1Gi", "NVIDIA-A100-SXM4-80GB", maxContextLength=2048)])
    )  # fmt: skip
    assert sorted((str(p.kind), p.models) for p in plan.pods) == [
        ("1x NVIDIA-A100-SXM4-80GB", ("a100",)),
        ("1x NVIDIA-L4", ("l4",)),
        ("cpu", ("c",)),
    ]
    assert plan.pods[0].budget.capacity in (80 * GIB, 24 * GIB, budgets.CPU_POD_MEMORY)


def test_a_model_bigger_than_the_accelerator_is_reported_and_an_oversize_one_gets_a_pod_of_its_own() -> None:
    plan = plans.plan(
        spec([gpu_model("huge", "30Gi", maxContextLength=2048),
              gpu_model("large", "21Gi", maxContextLength=512, maxInFlight=1),
              gpu_model("small", "500Mi", maxContextLength=512, maxInFlight=1)])
    )  # fmt: skip
    [refused] = plan.unplaced
    assert (refused.model, refused.reason) == ("huge", "TooLarge")
    assert "but a 1x NVIDIA-L4 pod has 24Gi" in refused.message and "weights 30Gi (hint)" in refused.message
    large = plan.pod_of("large")
    assert large is not None and large.oversize and large.models == ("large",)
    assert plan.pod_of("small") is not large
    assert any("a pod of its own" in line for line in plan.describe())


def test_unknown_sizes_and_budgets_are_reported_not_guessed() -> None:
    plan = plans.plan(spec([cpu_model("nohint", None), gpu_model("anygpu", "1Gi", product=None)]))
    assert {(u.model, u.reason) for u in plan.unplaced} == {
        ("nohint", "SizeUnknown"),
        ("anygpu", "BudgetUnknown"),
    }
    assert not plan.pods
    anygpu = gpu_model("anygpu", "1Gi", product=None, placement={"pack": "g", "memory": "1Gi"})
    named = plans.plan(spec([anygpu], packs=[{"name": "g", "memory": "40Gi"}]))
    assert [p.models for p in named.pods] == [("anygpu",)] and not named.unplaced


def test_a_model_with_its_own_hpa_or_keda_keeps_its_own_pod() -> None:
    replicas = {"min": 1, "max": 3}
    models = [
        cpu_model("hpa", autoscaling={"mode": "hpa"}, replicas=replicas),
        cpu_model("keda", autoscaling={"mode": "keda"}, replicas=replicas),
        cpu_model("builtin", autoscaling={"mode": "builtin"}, replicas=replicas),
        cpu_model("fixed-keda", autoscaling={"mode": "keda"}),  # min == max: no autoscaler acts
    ]
    plan = plans.plan(spec(models))
    assert [p.models for p in plan.pods] == [("builtin", "fixed-keda")]
    refused = {u.model: u for u in plan.unplaced}
    assert sorted(refused) == ["hpa", "keda"]
    assert all(u.reason == "NotPackable" for u in refused.values())
    assert "mode builtin" in refused["hpa"].message


def test_pack_none_and_the_fleet_default() -> None:
    models = [cpu_model("a"), cpu_model("b")]
    del models[0]["placement"]["pack"]  # inherits spec.placement
    models[1]["placement"]["pack"] = "none"
    assert not plans.plan(spec(models)).wanted  # the fleet default is none
    plan = plans.plan(spec(models, placement={"pack": "auto"}))
    assert [p.models for p in plan.pods] == [("a",)]


KINDS = [None, "NVIDIA-L4", "NVIDIA-A100-SXM4-80GB"]


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 14))
    models = []
    for i in range(count):
        product = draw(st.sampled_from(KINDS))
        hint = f"{draw(st.integers(1, 40_000))}Mi"
        extra: dict[str, Any] = {"maxContextLength": draw(st.sampled_from([256, 2048, 8192, 32768]))}
        model = (
            cpu_model(f"m{i}", hint, **extra)
            if product is None
            else gpu_model(f"m{i}", hint, product, **extra)
        )
        model["placement"]["pack"] = draw(st.sampled_from(["auto", "p", "none"]))
        models.append(model)
    pack_memory = f"{draw(st.integers(1, 100))}Gi"
    margin = draw(st.integers(0, 50))
    return {"models": models, "packs": [{"name": "p", "memory": pack_memory, "safetyMarginPercent": margin}]}


@settings(max_examples=300, deadline=None)
@given(fleets(), st.randoms(use_true_random=False))
def test_plan_properties(body: dict[str, Any], rng: Any) -> None:
    fleet = spec(**body)
    plan = plans.plan(fleet)
    opted = {m.name for m in fleet.models if fleet.pack_of(m) != "none"}
    placed = [name for pod in plan.pods for name in pod.models]
    assert sorted(placed + [u.model for u in plan.unplaced]) == sorted(opted)  # each exactly once
    assert len(plan.pods) <= len(opted)
    for pod in plan.pods:
        assert pod.used == sum(plan.demands[m].total for m in pod.models)
        assert pod.used <= pod.budget.capacity
        if len(pod.models) > 1:
            assert pod.used <= pod.budget.usable  # only a lone oversize model may pass the margin
        members = [fleet.model(m) for m in pod.models]
        assert {fleet.pack_of(m) for m in members} == {pod.pack}
        assert {budgets.Kind.of(m) for m in members} == {pod.kind}
    shuffled = list(body["models"])
    rng.shuffle(shuffled)
    assert plans.plan(spec(models=shuffled, packs=body["packs"])) == plan  # order of the spec is irrelevant
