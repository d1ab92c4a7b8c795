"""llama.cpp's server on CPU (or GPU with the CUDA image): one GGUF file, pulled from Hugging Face by the
server itself or staged by `sources`. Speaks either `llama-server` or `llama-cpp-python` command lines."""

from __future__ import annotations

from typing import Any

from flotilla.api.modelspec import ModelSpec
from flotilla.runtimes import base, sources

NAME = "llamacpp"
PORT = 8080
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"memory": "2Gi"},
}


def _llama_server_args(
    model: ModelSpec, staged: sources.StagedSource, adapter: str | None
) -> tuple[list[str] | None, list[str], str]:
    """(command, args, probe path) for ggml-org's `llama-server` (the image's entrypoint)."""
    args = ["--host", "0.0.0.0", "--port", str(PORT), "--alias", model.model_name, "--metrics"]
    if staged.hf_repo:
        args += [
            "--hf-repo",
            f"{staged.hf_repo}:{model.quantization}" if model.quantization else staged.hf_repo,
        ]
    else:
        args += ["--model", staged.path or ""]
    if model.max_context_length:
        args += ["--ctx-size", str(model.max_context_length)]
    if model.gpus:
        args += ["--n-gpu-layers", "999"]
    if adapter:
        args += ["--lora", adapter]
    return None, args, "/health"


def _llama_cpp_python_args(
    model: ModelSpec, staged: sources.StagedSource, adapter: str | None
) -> tuple[list[str] | None, list[str], str]:
    """(command, args, probe path) for `python -m llama_cpp.server` (no /health: probe /v1/models)."""
    args = ["--host", "0.0.0.0", "--port", str(PORT), "--model_alias", model.model_name]
    if staged.hf_repo:
        pattern = f"*{model.quantization}*.gguf" if model.quantization else "*.gguf"
        args += ["--hf_model_repo_id", staged.hf_repo, "--model", pattern]
    else:
        args += ["--model", staged.path or ""]
    if model.max_context_length:
        args += ["--n_ctx", str(model.max_context_length)]
    if model.gpus:
        args += ["--n_gpu_layers", "-1"]
    if adapter:
        args += ["--lora_path", adapter]
    return ["python", "-m", "llama_cpp.server"], args, "/v1/models"


class LlamaCpp:
    """The `llamacpp` runtime."""

    name = NAME
    port = PORT

    def build(self, model: ModelSpec, settings: base.RuntimeSettings) -> base.PodParts:
        staged = sources.stage(model, settings, single_file=True)
        adapter = sources.stage_adapter(model, settings)
        flavor = (
            _llama_cpp_python_args if settings.llamacpp_flavor == "llama-cpp-python" else _llama_server_args
        )
        command, args, probe_path = flavor(model, staged, adapter.path if adapter else None)
        parts = [staged] if adapter is None else [staged, adapter]
        env = [{"name": "LLAMA_CACHE", "value": "/cache/llama.cpp"}, *staged.env]
        container = base.container(
            model,
            settings,
            image=settings.llamacpp_cuda_image if model.gpus else settings.llamacpp_image,
            port=PORT,
            command=command,
            args=args,
            env=env,
            mounts=[m for p in parts for m in p.mounts],
            probe_path=probe_path,
            default_resources=DEFAULT_RESOURCES,
        )
        return base.PodParts(
            container=container,
            init_containers=[c for p in parts for c in p.init_containers],
            volumes=[*base.scratch_volumes(), *(v for p in parts for v in p.volumes)],
        )


RUNTIME = LlamaCpp()
