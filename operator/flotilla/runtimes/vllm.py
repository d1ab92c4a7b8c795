"""vLLM's OpenAI-compatible server on GPUs: pulls hf:// itself, serves a directory for pvc:// and s3://.

A model with an `adapter` (a PEFT LoRA directory, e.g. a distillation training Job's) is served with vLLM's
LoRA support: the adapter is a LoRA module named like the model, so the router's requests (`model` = the
model's served name) reach the adapter; the bare base answers only to `<name>-base`. The two names must
differ: vLLM answers a request naming its base model with the base even when a LoRA module has that name.
"""

from __future__ import annotations

from typing import Any

from flotilla import errors
from flotilla.api.distillation import LORA_RANK
from flotilla.api.modelspec import ModelSpec
from flotilla.runtimes import base, sources

NAME = "vllm"
PORT = 8000
SHM_SIZE = "2Gi"
BASE_SUFFIX = "-base"
"""What the base model of a model with an adapter answers to (the model's own name is the adapter's)."""
DEFAULT_RESOURCES: dict[str, Any] = {"requests": {"cpu": "2", "memory": "8Gi"}}


class VLLM:
    """The `vllm` runtime."""

    name = NAME
    port = PORT

    def build(self, model: ModelSpec, settings: base.RuntimeSettings) -> base.PodParts:
        if model.gpus < 1:  # the API rejects this too; kept so a bypassed validation still fails clearly
            raise errors.InvalidSpecError(model.caps.gpu_message())
        staged = sources.stage(model, settings, single_file=False)
        adapter = sources.stage_adapter(model, settings, single_file=False)
        weights = staged.hf_repo or staged.path or ""
        served = model.model_name + BASE_SUFFIX if adapter else model.model_name
        args = [
            "--model",
            weights,
            "--served-model-name",
            served,
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
        parts = [staged]
        if adapter is not None:
            args += ["--enable-lora", "--max-lora-rank", str(LORA_RANK),
                     "--lora-modules", f"{model.model_name}={adapter.path}"]  # fmt: skip
            parts.append(adapter)
        # The weights' env only: the adapter's HF_HUB_OFFLINE would stop vLLM pulling an hf:// base.
        env = [{"name": "VLLM_NO_USAGE_STATS", "value": "1"}, *staged.env]
        container = base.container(
            model,
            settings,
            image=settings.vllm_image,
            port=PORT,
            command=["python3", "-m", "vllm.entrypoints.openai.api_server"],
            args=args,
            env=env,
            mounts=[{"name": "dshm", "mountPath": "/dev/shm"}, *(m for p in parts for m in p.mounts)],
            probe_path="/health",
            default_resources=DEFAULT_RESOURCES,
        )
        shm = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}}
        return base.PodParts(
            container=container,
            init_containers=[c for p in parts for c in p.init_containers],
            volumes=[*base.scratch_volumes(), shm, *(v for p in parts for v in p.volumes)],
        )


RUNTIME = VLLM()
