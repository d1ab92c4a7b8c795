"""vLLM's OpenAI-compatible server on GPUs: pulls hf:// itself, serves a directory for pvc:// and s3://."""

from __future__ import annotations

from typing import Any

from flotilla import errors
from flotilla.api.modelspec import ModelSpec
from flotilla.runtimes import base, sources

NAME = "vllm"
PORT = 8000
SHM_SIZE = "2Gi"
DEFAULT_RESOURCES: dict[str, Any] = {"requests": {"cpu": "2", "memory": "8Gi"}}


class VLLM:
    """The `vllm` runtime."""

    name = NAME
    port = PORT

    def build(self, model: ModelSpec, settings: base.RuntimeSettings) -> base.PodParts:
        if model.gpus < 1:  # the API rejects this too; kept so a bypassed validation still fails clearly
            raise errors.InvalidSpecError(model.caps.gpu_message())
        staged = sources.stage(model, settings, single_file=False)
        weights = staged.hf_repo or staged.path or ""
        args = [
            "--model",
            weights,
            "--served-model-name",
            model.model_name,
            "--host",
            "0.0.0.0",
            "--port",
            str(PORT),
        ]
        if staged.hf_revision:
            args += ["--revision", staged.hf_revision]
        if model.quantization:
            args += ["--quantization", model.quantization]
        if model.gpus > 1:
            args += ["--tensor-parallel-size", str(model.gpus)]
        if model.max_context_length:
            args += ["--max-model-len", str(model.max_context_length)]
        env = [{"name": "VLLM_NO_USAGE_STATS", "value": "1"}, *staged.env]
        container = base.container(
            model,
            settings,
            image=settings.vllm_image,
            port=PORT,
            command=["python3", "-m", "vllm.entrypoints.openai.api_server"],
            args=args,
            env=env,
            mounts=[{"name": "dshm", "mountPath": "/dev/shm"}, *staged.mounts],
            probe_path="/health",
            default_resources=DEFAULT_RESOURCES,
        )
        shm = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}}
        return base.PodParts(
            container=container,
            init_containers=staged.init_containers,
            volumes=[*base.scratch_volumes(), shm, *staged.volumes],
        )


RUNTIME = VLLM()
