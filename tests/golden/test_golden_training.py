"""Golden render of training Jobs: tests/golden/training/fleet.yaml -> expected.yaml (one Job per training
task), plus what the Job relies on besides the file: the steps' order, the sink it reads and writes, the
volume-sink variant, and names that stay within 63 characters.

To accept a change on purpose:
`FLOTILLA_UPDATE_GOLDEN=1 .venv/bin/pytest tests/golden/test_golden_training.py`, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla import errors
from flotilla.api.fleet import ModelFleet
from flotilla.render import documents, training
from flotilla.render.settings import RenderSettings

HERE = Path(__file__).resolve().parent / "training"
UPDATE = os.environ.get("FLOTILLA_UPDATE_GOLDEN") == "1"


def _body() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((HERE / "fleet.yaml").read_text())
    return body


def _render(fleet: ModelFleet) -> list[dict[str, Any]]:
    """One Job per training task, version 1 for math and 3 for chat."""
    return [
        training.render_training_job(fleet, "math", 1, RenderSettings()),
        training.render_training_job(fleet, "chat", 3, RenderSettings()),
    ]


def test_golden() -> None:
    rendered = _render(ModelFleet.from_body(_body()))
    if UPDATE:
        (HERE / "expected.yaml").write_text(documents.dump_all(rendered))
    expected = list(yaml.safe_load_all((HERE / "expected.yaml").read_text()))
    assert list(yaml.safe_load_all(documents.dump_all(rendered))) == expected


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return [*pod["initContainers"], *pod["containers"]]


def test_steps_export_then_finetune_then_publish_to_a_versioned_prefix() -> None:
    math, chat = _render(ModelFleet.from_body(_body()))
    assert [s["name"] for s in _steps(math)] == ["export", "finetune", "publish"]
    assert [s["name"] for s in _steps(chat)] == ["download", "export", "finetune", "publish"]
    export, finetune, publish = _steps(math)
    assert export["command"][:3] == ["flotilla", "traces", "export"]
    assert "s3://flotilla-traces/flotilla-traces/" in export["command"]
    assert finetune["image"] == "flotilla-finetune:0.1.0"  # train.image
    assert finetune["command"][finetune["command"].index("--steps") + 1] == "200"
    assert finetune["command"][finetune["command"].index("--base") + 1] == (
        "/models/gemma/gemma-3-270m-q4_k_m.gguf"
    )
    dest = "s3://flotilla-traces/flotilla-traces/adapters/local/math/v1/"
    assert publish["command"][:5] == ["flotilla", "objects", "cp", "/work/out", dest]
    assert {e["name"] for e in publish["env"]} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert math["metadata"]["annotations"]["flotilla.dev/adapter"] == dest
    assert _steps(chat)[2]["image"] == RenderSettings().router_image  # no train.image: the default
    assert math["spec"]["backoffLimit"] == 2
    assert math["spec"]["activeDeadlineSeconds"] == 1800 + 15 * 200


def test_a_volume_sink_is_mounted_read_only_for_export_and_written_by_publish() -> None:
    body = _body()
    body["spec"]["distillation"]["sink"] = {"volume": {"claimName": "traces", "subPath": "fleet"}}
    job = training.render_training_job(ModelFleet.from_body(body), "math", 2, RenderSettings())
    export, _, publish = _steps(job)
    assert export["command"][export["command"].index("--source") + 1] == "/sink"
    assert {"name": "sink", "mountPath": "/sink", "subPath": "fleet", "readOnly": True} in export[
        "volumeMounts"
    ]
    assert {"name": "sink", "mountPath": "/sink", "subPath": "fleet"} in publish["volumeMounts"]
    assert publish["command"][-1] == "/sink/adapters/local/math/v2/"
    assert not any(e["name"].startswith("AWS_") for s in _steps(job) for e in s["env"])


def test_the_job_is_scheduled_where_the_base_models_pods_may_run() -> None:
    math, chat = _render(ModelFleet.from_body(_body()))
    pod = math["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"flotilla.dev/pool": "cpu"}  # the base model `pocket`'s placement
    assert pod["tolerations"] == [{"key": "flotilla.dev/pool", "operator": "Exists", "effect": "NoSchedule"}]
    assert "nodeSelector" not in chat["spec"]["template"]["spec"]  # `pocket-web` has none


def test_long_task_names_keep_the_job_name_within_63_characters() -> None:
    body = _body()
    long_task = "a" * 32
    body["metadata"]["name"] = "f" * 30
    body["spec"]["routing"]["tasks"][0]["name"] = long_task
    job = training.render_training_job(ModelFleet.from_body(body), long_task, 12, RenderSettings())
    assert len(job["metadata"]["name"]) <= 63
    assert job["metadata"]["labels"][training.TASK_LABEL] == long_task


def test_a_task_without_train_is_refused() -> None:
    body = _body()
    del body["spec"]["routing"]["tasks"][1]["distillation"]["train"]
    with pytest.raises(errors.InvalidSpecError, match=r"has no distillation\.train"):
        training.render_training_job(ModelFleet.from_body(body), "chat", 1, RenderSettings())


GPU = Path(__file__).resolve().parent / "training-gpu"


def _render_gpu() -> list[dict[str, Any]]:
    body: dict[str, Any] = yaml.safe_load((GPU / "fleet.yaml").read_text())
    fleet = ModelFleet.from_body(body)
    return [
        training.render_training_job(fleet, "math", 1, RenderSettings()),
        training.render_training_job(fleet, "code", 2, RenderSettings()),
    ]


def test_golden_gpu() -> None:
    rendered = _render_gpu()
    if UPDATE:
        (GPU / "expected.yaml").write_text(documents.dump_all(rendered))
    expected = list(yaml.safe_load_all((GPU / "expected.yaml").read_text()))
    assert list(yaml.safe_load_all(documents.dump_all(rendered))) == expected


def test_a_vllm_base_trains_on_its_gpus_with_the_gpu_image_and_publishes_the_adapter_directory() -> None:
    math, code = _render_gpu()
    assert [s["name"] for s in _steps(math)] == ["export", "finetune", "publish"]  # hf://: the trainer pulls
    assert [s["name"] for s in _steps(code)] == ["download", "export", "finetune", "publish"]
    finetune = _steps(math)[1]
    assert finetune["image"] == RenderSettings().finetune_gpu_image
    assert (
        finetune["command"][finetune["command"].index("--base") + 1] == "hf://Qwen/Qwen2.5-1.5B-Instruct@main"
    )
    env = {e["name"]: e for e in finetune["env"]}
    assert env["HF_HOME"]["value"] == training.HF_CACHE_DIR and "HF_HUB_OFFLINE" not in env
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token"}
    assert finetune["resources"] == {
        "requests": {"cpu": "2", "memory": "16Gi"},
        "limits": {"nvidia.com/gpu": "1"},
    }
    pod = math["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4", "pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert math["metadata"]["annotations"]["flotilla.dev/adapter"] == "/sink/adapters/gpu/math/v1/"

    download, _, tune, publish = _steps(code)
    assert download["command"][3:5] == ["s3://weights/qwen2.5-coder-1.5b/", "/models/qwen2.5-coder-1.5b"]
    assert "--recursive" in download["command"]  # a directory, not one file
    assert tune["image"] == "registry.example/flotilla-finetune-gpu:0.1.0"  # train.image
    assert tune["command"][tune["command"].index("--base") + 1] == "/models/qwen2.5-coder-1.5b"
    assert tune["resources"] == {
        "requests": {"cpu": "2", "memory": "16Gi"},
        "limits": {"nvidia.com/gpu": "2"},  # train.resources, plus the base's GPUs
    }
    assert publish["command"][-1] == "/sink/adapters/gpu/code/v2/"


def test_the_gpu_image_comes_from_the_environment() -> None:
    from flotilla.render import settings

    loaded = settings.load({"FLOTILLA_FINETUNE_GPU_IMAGE": "registry.example/ft-gpu:1"})
    assert loaded.finetune_gpu_image == "registry.example/ft-gpu:1"
    assert "FLOTILLA_FINETUNE_GPU_IMAGE" in settings.settings_reference()
