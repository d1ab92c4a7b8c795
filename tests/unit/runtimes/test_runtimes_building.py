"""Each runtime turns each source kind into the right mechanism and the right server command line."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla import errors
from flotilla.api.modelspec import ModelSpec
from flotilla.runtimes import RUNTIMES, RuntimeSettings, get, llamacpp, vllm

SETTINGS = RuntimeSettings()


def model(**fields: Any) -> ModelSpec:
    return ModelSpec.model_validate({"name": "m", **fields})


def _arg(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_table_holds_both_runtimes() -> None:
    assert set(RUNTIMES) == {"vllm", "llamacpp"}
    with pytest.raises(errors.InvalidSpecError, match="unknown runtime 'ray'"):
        get("ray")


def test_vllm_pulls_hf_itself_with_token() -> None:
    spec = model(
        runtime="vllm",
        source={
            "uri": "hf://Qwen/Qwen2.5-Coder-1.5B-Instruct-AWQ@main",
            "hfToken": {"secretKeyRef": {"name": "hf", "key": "t"}},
        },
        quantization="awq",
        accelerator={"gpus": 2},
        maxContextLength=8192,
    )
    parts = vllm.RUNTIME.build(spec, SETTINGS)
    args = parts.container["args"]
    assert _arg(args, "--model") == "Qwen/Qwen2.5-Coder-1.5B-Instruct-AWQ"
    assert _arg(args, "--revision") == "main"
    assert _arg(args, "--quantization") == "awq"
    assert _arg(args, "--tensor-parallel-size") == "2"
    assert _arg(args, "--max-model-len") == "8192"
    assert _arg(args, "--served-model-name") == "m"
    assert _env(parts.container)["HF_TOKEN"] == {"secretKeyRef": {"name": "hf", "key": "t"}}
    assert parts.container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert parts.init_containers == []
    shm = next(v for v in parts.volumes if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in parts.container["volumeMounts"]
    assert parts.container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert parts.container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_vllm_mounts_pvc_read_only() -> None:
    parts = vllm.RUNTIME.build(
        model(runtime="vllm", source={"uri": "pvc://weights/qwen/coder"}, accelerator={}), SETTINGS
    )
    assert _arg(parts.container["args"], "--model") == "/models/qwen/coder"
    claim = next(v for v in parts.volumes if v["name"] == "model")
    assert claim["persistentVolumeClaim"] == {"claimName": "weights", "readOnly": True}
    assert {"name": "model", "mountPath": "/models", "readOnly": True} in parts.container["volumeMounts"]
    assert _env(parts.container)["HF_HUB_OFFLINE"] == "1"


def test_vllm_downloads_s3_prefix_in_an_init_container() -> None:
    spec = model(
        runtime="vllm",
        source={
            "uri": "s3://bucket/models/coder",
            "credentialsSecret": "s3-creds",
            "endpoint": "http://minio:9000",
        },
        accelerator={"gpus": 1},
    )
    parts = vllm.RUNTIME.build(spec, SETTINGS)
    [init] = parts.init_containers
    assert init["command"][:5] == ["flotilla", "objects", "cp", "s3://bucket/models/coder", "/models/coder"]
    assert "--recursive" in init["command"]
    assert init["command"][-2:] == ["--endpoint-url", "http://minio:9000"]
    assert init["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert _arg(parts.container["args"], "--model") == "/models/coder"
    assert next(v for v in parts.volumes if v["name"] == "model") == {"name": "model", "emptyDir": {}}


def test_vllm_refuses_to_build_without_gpu() -> None:
    spec = ModelSpec.model_construct(
        name="m",
        runtime="vllm",
        accelerator=None,
        source=model(runtime="llamacpp", source={"uri": "pvc://c/a.gguf"}).source,
    )
    with pytest.raises(errors.InvalidSpecError, match="runtime vllm needs a GPU"):
        vllm.RUNTIME.build(spec, SETTINGS)


def test_llamacpp_llama_server_from_hf_with_quant() -> None:
    spec = model(
        runtime="llamacpp", source={"uri": "hf://unsloth/gemma-3-270m-it-GGUF"}, quantization="Q4_K_M"
    )
    parts = llamacpp.RUNTIME.build(spec, SETTINGS)
    container = parts.container
    assert "command" not in container  # the image's entrypoint is llama-server
    assert _arg(container["args"], "--hf-repo") == "unsloth/gemma-3-270m-it-GGUF:Q4_K_M"
    assert _arg(container["args"], "--alias") == "m"
    assert container["image"] == SETTINGS.llamacpp_image
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert _env(container)["LLAMA_CACHE"] == "/cache/llama.cpp"
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})


def test_llamacpp_downloads_http_gguf() -> None:
    spec = model(runtime="llamacpp", source={"uri": "https://example.com/m/gemma-q4.gguf?download=1"})
    parts = llamacpp.RUNTIME.build(spec, SETTINGS)
    [init] = parts.init_containers
    assert init["image"] == SETTINGS.http_download_image
    assert init["command"][0] == "curl"
    assert init["command"][-1] == "https://example.com/m/gemma-q4.gguf?download=1"
    assert _arg(init["command"], "--output") == "/models/gemma-q4.gguf"
    assert _arg(parts.container["args"], "--model") == "/models/gemma-q4.gguf"


def test_llamacpp_python_flavor() -> None:
    settings = RuntimeSettings(llamacpp_flavor="llama-cpp-python", llamacpp_image="flotilla-llamacpp:0.1.0")
    spec = model(runtime="llamacpp", source={"uri": "pvc://models/gemma.gguf"}, maxContextLength=2048)
    container = llamacpp.RUNTIME.build(spec, settings).container
    assert container["command"] == ["python", "-m", "llama_cpp.server"]
    assert _arg(container["args"], "--model") == "/models/gemma.gguf"
    assert _arg(container["args"], "--n_ctx") == "2048"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    assert container["image"] == "flotilla-llamacpp:0.1.0"


def test_llamacpp_with_gpu_uses_cuda_image_and_offloads() -> None:
    spec = model(runtime="llamacpp", source={"uri": "pvc://models/gemma.gguf"}, accelerator={"gpus": 1})
    container = llamacpp.RUNTIME.build(spec, SETTINGS).container
    assert container["image"] == SETTINGS.llamacpp_cuda_image
    assert _arg(container["args"], "--n-gpu-layers") == "999"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize("runtime", ["vllm", "llamacpp"])
def test_overrides_and_security(runtime: str) -> None:
    source = "hf://org/repo" if runtime == "vllm" else "pvc://c/m.gguf"
    spec = model(
        runtime=runtime,
        source={"uri": source},
        accelerator={"gpus": 1},
        image="registry.local/custom:1",
        args=["--extra", "1"],
        env=[
            {"name": "HOME", "value": "/elsewhere"},
            {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        resources={"requests": {"cpu": 4, "memory": "16Gi"}},
    )
    container = get(runtime).build(spec, SETTINGS).container
    assert container["image"] == "registry.local/custom:1"
    assert container["args"][-2:] == ["--extra", "1"]
    env = _env(container)
    assert env["HOME"] == "/elsewhere"
    assert [e["name"] for e in container["env"]].count("HOME") == 1
    assert env["K"] == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/cache"} <= mounts  # writable scratch on a read-only root


def test_building_does_not_leak_between_models() -> None:
    """Default resources are copied: a GPU model must not leave its GPU limit on the next CPU model."""
    llamacpp.RUNTIME.build(
        model(runtime="llamacpp", source={"uri": "pvc://c/m.gguf"}, accelerator={}), SETTINGS
    )
    cpu = llamacpp.RUNTIME.build(
        model(runtime="llamacpp", source={"uri": "pvc://c/m.gguf"}), SETTINGS
    ).container
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})


@pytest.mark.parametrize(("runtime", "path"), [("vllm", "/models/qwen"), ("llamacpp", "/models/gemma.gguf")])
def test_file_source_is_already_in_the_image(runtime: str, path: str) -> None:
    spec = model(
        runtime=runtime, source={"uri": f"file://{path}"}, accelerator={"gpus": 1}, image="weights:1"
    )
    parts = get(runtime).build(spec, SETTINGS)
    assert _arg(parts.container["args"], "--model") == path
    assert parts.init_containers == []
    assert not any(v["name"] == "model" for v in parts.volumes)
