"""The training Job of a task (`routing.tasks[].distillation.train`): export the task's traces from the
fleet's sink, fine-tune the base model on them (a llamacpp base: CPU LoRA on its GGUF; a vllm base: LoRA on
the base's GPUs, its HF-format weights staged as the vllm runtime stages them), and write the adapter and its
manifest back to the sink under a versioned prefix. Pure: the operator decides when to create it
(docs/distillation.md).

The steps run in order as init containers (download the base when its source needs it, export, fine-tune)
and the container publishes `/work/out` to the sink, so a failed step fails the pod and the Job retries it
(backoffLimit, exponential back-off); nothing of the serving pods is touched.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from flotilla import errors
from flotilla.api.distillation import TrainSpec
from flotilla.api.fleet import ModelFleet
from flotilla.render import models, naming
from flotilla.render.settings import RenderSettings
from flotilla.runtimes import base, sources

COMPONENT = "training"
TASK_LABEL = "flotilla.dev/task"
VERSION_LABEL = "flotilla.dev/adapter-version"
WORK_DIR = "/work"
DATA_DIR = f"{WORK_DIR}/data"
OUT_DIR = f"{WORK_DIR}/out"
SINK_DIR = "/sink"
BACKOFF_LIMIT = 2
"""Retries of a failed pod (the Job controller backs off 10 s, 20 s, 40 s...)."""
TTL_SECONDS = 86_400
"""A finished Job (and its pod's logs) is kept a day, then garbage-collected."""
BASE_DEADLINE_SECONDS = 1800
SECONDS_PER_STEP = 15
"""Deadline of the whole Job: 30 min (downloads, loading the base: 40-75 s) plus 15 s a step, ~8x the quiet
1.8 s/step measured for Gemma 3 270M on 2 cores (a busy node measured 28-33 s/step)."""
RESOURCES = {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "5Gi"}}
"""Peak RSS measured at 3.65-3.9 GiB (docs/distillation.md); no CPU limit, torch uses the idle cores."""
WORK_SIZE = "2Gi"
"""Scratch: the exported JSONL and the adapter (15 MB) are small; transformers' caches are not."""
GPU_RESOURCES = {"requests": {"cpu": "2", "memory": "16Gi"}}
"""A vllm base's fine-tune when neither `train.resources` nor the base model's own resources say more: the
HF-format weights are loaded into host memory once before they move to the GPU."""
HF_CACHE_DIR = "/hf-cache"
"""HF_HOME of a GPU fine-tune: an hf:// base is downloaded there by the trainer itself (an emptyDir with no
size limit: a 1-8B model is 2-16 GB)."""
MAX_JOB_NAME = 63


def adapter_prefix(fleet: ModelFleet, task: str, version: int) -> str:
    """Where version `version` of the task's adapter goes, relative to the sink's prefix or sub-path."""
    return f"adapters/{fleet.name}/{task}/v{version}/"


def job_name(fleet: ModelFleet, task: str, version: int) -> str:
    """`<fleet>-train-<task>-v<version>`, the task replaced by a hash when that exceeds 63 characters."""
    name = f"{fleet.name}-train-{task}-v{version}"
    if len(name) <= MAX_JOB_NAME:
        return name
    digest = hashlib.sha256(task.encode()).hexdigest()[:10]
    return f"{fleet.name}-train-{digest}-v{version}"


def _train_spec(fleet: ModelFleet, task: str) -> TrainSpec:
    for entry in fleet.spec.routing.tasks:
        if entry.name == task and entry.distillation is not None and entry.distillation.train is not None:
            return entry.distillation.train
    raise errors.InvalidSpecError(f"task {task!r} of fleet {fleet.name!r} has no distillation.train")


def _step(name: str, image: str, command: list[str], settings: RenderSettings) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": settings.runtimes.image_pull_policy,
        "command": command,
        "env": [{"name": "HOME", "value": "/tmp"}],
        "securityContext": base.container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "work", "mountPath": WORK_DIR}],
        "terminationMessagePolicy": base.TERMINATION_MESSAGE_POLICY,
    }


def render_training_job(
    fleet: ModelFleet, task: str, version: int, settings: RenderSettings
) -> dict[str, Any]:
    """The Job producing version `version` (1, 2, ...) of the task's adapter."""
    train = _train_spec(fleet, task)
    distillation = fleet.spec.distillation
    if distillation is None:
        raise errors.InvalidSpecError(f"task {task!r}: distillation.train needs spec.distillation (the sink)")
    model = fleet.spec.model(train.base)
    gpu = model.train_format == "hf"
    staged = sources.stage(model, settings.runtimes, single_file=not gpu)
    if gpu and staged.hf_repo:  # the trainer pulls it, as vLLM does (HF_HOME on scratch)
        revision = f"@{staged.hf_revision}" if staged.hf_revision else ""
        base_arg = f"hf://{staged.hf_repo}{revision}"
    elif staged.path is not None and model.train_format is not None:
        base_arg = staged.path
    else:
        raise errors.InvalidSpecError(
            f"train.base {model.name!r}: the training Job needs a llamacpp model with a GGUF file source or "
            "a vllm model with HF-format weights (hf://, pvc://, s3://)"
        )
    trainer = train.image or (settings.finetune_gpu_image if gpu else settings.router_image)
    prefix = adapter_prefix(fleet, task, version)
    export = ["flotilla", "traces", "export", "--task", task, "--fleet", fleet.name,
              "--format", "openai-chat", "-o", DATA_DIR]  # fmt: skip
    s3, volume = distillation.sink.s3, distillation.sink.volume
    sink_env: list[dict[str, Any]] = []
    if s3 is not None:
        export += ["--source", f"s3://{s3.bucket}/{s3.prefix}", "--endpoint-url", s3.endpoint]
        sink_env = [{"name": "AWS_REGION", "value": s3.region}]
        for name, ref in (("AWS_ACCESS_KEY_ID", s3.access_key_id),
                          ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)):  # fmt: skip
            sink_env.append(base.secret_env(name, ref))
    else:
        export += ["--source", SINK_DIR]
    export_step = _step("export", settings.router_image, export, settings)
    export_step["env"] += copy.deepcopy(sink_env)
    finetune = ["flotilla", "distill", "finetune", "--data", f"{DATA_DIR}/train.jsonl", "--base", base_arg,
                "--out", OUT_DIR, "--method", train.method, "--steps", str(train.steps)]  # fmt: skip
    finetune_step = _step("finetune", trainer, finetune, settings)
    finetune_step["env"] += [*staged.env, {"name": "TMPDIR", "value": "/tmp"}]
    finetune_step["volumeMounts"] += staged.mounts
    sized = train.resources.to_k8s() if train.resources else {}
    if gpu:
        finetune_step["env"].append({"name": "HF_HOME", "value": HF_CACHE_DIR})
        finetune_step["volumeMounts"].append({"name": "hf-cache", "mountPath": HF_CACHE_DIR})
        sized = sized or model.resources.to_k8s() or copy.deepcopy(GPU_RESOURCES)
        sized.setdefault("limits", {})["nvidia.com/gpu"] = str(model.gpus)  # the base's GPUs, always
    finetune_step["resources"] = sized or copy.deepcopy(RESOURCES)
    if s3 is not None:
        dest = f"s3://{s3.bucket}/{s3.prefix}{prefix}"
        publish_command = ["flotilla", "objects", "cp", OUT_DIR, dest, "--recursive",
                           "--endpoint-url", s3.endpoint]  # fmt: skip
        publish = _step("publish", settings.runtimes.s3_download_image, publish_command, settings)
        publish["env"] += copy.deepcopy(sink_env)
    else:
        dest = f"{SINK_DIR}/{prefix}"
        publish = _step("publish", settings.router_image, ["sh", "-c", 'mkdir -p "$1" && cp -R "$0"/. "$1"',
                                                           OUT_DIR, dest], settings)  # fmt: skip
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "work", "emptyDir": {"sizeLimit": WORK_SIZE}},
        *staged.volumes,
        *([{"name": "hf-cache", "emptyDir": {}}] if gpu else []),
    ]
    if volume is not None:
        mount: dict[str, Any] = {"name": "sink", "mountPath": SINK_DIR}
        if volume.sub_path:
            mount["subPath"] = volume.sub_path
        export_step["volumeMounts"].append({**mount, "readOnly": True})
        publish["volumeMounts"].append(mount)
        volumes.append({"name": "sink", "persistentVolumeClaim": {"claimName": volume.claim_name}})
    labels = naming.fleet_labels(fleet, COMPONENT) | {TASK_LABEL: task, VERSION_LABEL: str(version)}
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": base.pod_security_context(),
        "initContainers": [*staged.init_containers, export_step, finetune_step],
        "containers": [publish],
        "volumes": volumes,
        # Where the base model's own pods may run (its nodeSelector and tolerations, and for a GPU model the
        # nvidia.com/gpu toleration and product selector): the nodes set aside for the model (a tainted CPU
        # pool, a GPU product) are also where its adapters are trained.
        **models.pod_scheduling(model),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(fleet, task, version),
            "namespace": fleet.namespace,
            "labels": dict(labels),
            "annotations": {"flotilla.dev/adapter": dest},
        },
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "activeDeadlineSeconds": BASE_DEADLINE_SECONDS + SECONDS_PER_STEP * train.steps,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }
