"""Golden render of `engine: kuberay` packs: tests/golden/kuberay/fleet.yaml -> expected.yaml (RayServices).

Compared as parsed YAML. To accept a change on purpose: `FLOTILLA_UPDATE_GOLDEN=1 .venv/bin/pytest
tests/golden/test_golden_rayservice.py`, then review the diff. Besides the file, what the pack-serve side
relies on: serveConfigV2's args are a valid pack-serve config and its CPU shares add up to the head's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla import errors
from flotilla.api.fleet import ModelFleet
from flotilla.packing import plans
from flotilla.packserve.config import PackServeConfig
from flotilla.render import documents, rayservice

HERE = Path(__file__).resolve().parent / "kuberay"
UPDATE = os.environ.get("FLOTILLA_UPDATE_GOLDEN") == "1"


def _fleet(**changes: Any) -> ModelFleet:
    body = yaml.safe_load((HERE / "fleet.yaml").read_text())
    body["spec"] |= changes
    return ModelFleet.from_body(body)


def _render(fleet: ModelFleet) -> list[dict[str, Any]]:
    return rayservice.render_rayservices(fleet, plans.plan(fleet.spec))


def test_golden() -> None:
    rendered = _render(_fleet())
    if UPDATE:
        (HERE / "expected.yaml").write_text(documents.dump_all(rendered))
    expected = list(yaml.safe_load_all((HERE / "expected.yaml").read_text()))
    assert list(yaml.safe_load_all(documents.dump_all(rendered))) == expected


def test_one_rayservice_per_pack_pod_with_one_deployment_per_model() -> None:
    by_name = {o["metadata"]["name"]: o for o in _render(_fleet())}
    assert sorted(by_name) == ["local-small-1", "local-small-2"]
    serve = yaml.safe_load(by_name["local-small-2"]["spec"]["serveConfigV2"])
    (app,) = serve["applications"]
    assert app["import_path"] == "flotilla.packserve.server:app"
    config = PackServeConfig.model_validate(app["args"])  # what the builder validates in the head pod
    assert [m.name for m in config.models] == ["pocket-long", "pocket", "pocket-short"]
    assert config.max_loaded == 2
    assert [m.chat_format for m in config.models] == ["alpaca"] * 3
    assert [m.threads for m in config.models] == [2, 1, 1]  # cpu request 1500m -> 2 threads
    assert [d["name"] for d in app["deployments"]] == [
        "model-pocket-long",
        "model-pocket",
        "model-pocket-short",
    ]
    head = by_name["local-small-2"]["spec"]["rayClusterConfig"]["headGroupSpec"]
    shares = sum(d["ray_actor_options"]["num_cpus"] for d in app["deployments"])
    assert head["rayStartParams"]["num-cpus"] == str(shares) == "4"
    (container,) = head["template"]["spec"]["containers"]
    assert container["image"] == "flotilla-ray:0.1.0"
    assert container["resources"]["limits"]["memory"] == "3072Mi"  # the pack pod's budget


def test_pvc_sources_are_mounted_per_model() -> None:
    small1 = next(o for o in _render(_fleet()) if o["metadata"]["name"] == "local-small-1")
    pod = small1["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert {
        "name": "model-claimed",
        "persistentVolumeClaim": {"claimName": "gguf-models", "readOnly": True},
    } in (pod["volumes"])
    args = yaml.safe_load(small1["spec"]["serveConfigV2"])["applications"][0]["args"]
    assert args["models"][0]["gguf"] == "/models/claimed/gemma/gemma-3-270m-q4_k_m.gguf"
    assert "chatFormat" not in args["models"][0]  # no CHAT_FORMAT in its env


def test_pod_engine_packs_render_no_rayservice() -> None:
    assert _render(_fleet(packs=[{"name": "small", "memory": "3Gi"}])) == []


def test_hub_models_stay_out_of_the_rayservices() -> None:
    """The plan leaves an hf:// llama.cpp model unpacked (pack-serve needs a GGUF file), so no RayService
    carries it and the plan says why."""
    fleet = _fleet()
    body = fleet.model_dump(by_alias=True, exclude_none=True, mode="json")
    body["spec"]["models"][0]["source"] = {"uri": "hf://unsloth/gemma-3-270m-it-GGUF"}
    body["spec"]["models"][0]["quantization"] = "Q4_K_M"
    changed = ModelFleet.from_body({"metadata": {"name": "local", "namespace": "flotilla-demo"}, **body})
    hub_model = body["spec"]["models"][0]["name"]
    served = [
        m["name"]
        for o in _render(changed)
        for m in yaml.safe_load(o["spec"]["serveConfigV2"])["applications"][0]["args"]["models"]
    ]
    assert served and hub_model not in served
    (refused,) = [u for u in plans.plan(changed.spec).unplaced if u.model == hub_model]
    assert refused.reason == "NotPackable"


def test_sources_a_head_pod_cannot_read_are_refused() -> None:
    fleet = _fleet()
    body = fleet.model_dump(by_alias=True, exclude_none=True, mode="json")
    # an https:// GGUF is packed, and a head pod has no init container to download it
    url = "https://huggingface.co/unsloth/gemma-3-270m-it-GGUF/resolve/main/gemma-3-270m-it-Q4_K_M.gguf"
    body["spec"]["models"][0]["source"] = {"uri": url}
    changed = ModelFleet.from_body({"metadata": {"name": "local", "namespace": "flotilla-demo"}, **body})
    with pytest.raises(errors.InvalidSpecError, match=r"file:// .* or pvc:// sources, not https://"):
        _render(changed)


def test_gpu_packs_are_refused_clearly() -> None:
    gpu = {
        "name": "gpu-a",
        "source": {"uri": "hf://Qwen/Qwen2.5-1.5B-Instruct"},
        "runtime": "vllm",
        "accelerator": {"gpus": 1, "product": "NVIDIA-L4"},
        "placement": {"pack": "small", "memory": "2Gi"},
    }
    fleet = _fleet(models=[gpu], packs=[{"name": "small", "engine": "kuberay"}])
    with pytest.raises(errors.InvalidSpecError, match="CPU packs only"):
        _render(fleet)
