"""Turn a model's `source` into what the pod needs to see the weights, shared by every runtime.

- `hf://`  : nothing to stage; the server pulls it (the runtime decides how), with HF_TOKEN from a Secret.
- `pvc://` : the claim mounted read-only at /models.
- `s3://`, `http(s)://`: an init container downloads into an emptyDir at /models.
- `file://`: a path already in the server image (weights baked in); nothing to stage.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from flotilla.api.modelspec import ModelSource, ModelSpec
from flotilla.runtimes import base

MODELS_DIR = "/models"
VOLUME = "model"
ADAPTERS_DIR = "/adapters"
ADAPTER_VOLUME = "adapter"


@dataclass
class StagedSource:
    """Where the weights are inside the container and what the pod needs for that."""

    hf_repo: str | None = None
    """ORG/REPO when the server pulls from Hugging Face itself."""
    hf_revision: str | None = None
    path: str | None = None
    """Local file or directory holding the weights otherwise."""
    env: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    init_containers: list[dict[str, Any]] = field(default_factory=list)


def stage(
    model: ModelSpec,
    settings: base.RuntimeSettings,
    single_file: bool,
    *,
    volume: str = VOLUME,
    directory: str = MODELS_DIR,
    source: ModelSource | None = None,
) -> StagedSource:
    """Stage the source; `single_file` runtimes get a file path, the others a directory. A pod staging
    several models (a pack) gives each its own ``volume`` name and mount ``directory``; ``source`` stages
    another file of the model (its adapter) instead of its weights."""
    source = source or model.source
    if source.scheme == "hf":
        repo, _, revision = source.location.partition("@")
        staged = StagedSource(hf_repo=repo, hf_revision=revision or None)
        if source.hf_token is not None:
            ref = source.hf_token.secret_key_ref
            staged.env.append(base.secret_env("HF_TOKEN", ref))
        return staged
    if source.scheme == "file":
        return StagedSource(path=source.location, env=[{"name": "HF_HUB_OFFLINE", "value": "1"}])
    if source.scheme == "pvc":
        claim, _, sub_path = source.location.partition("/")
        return StagedSource(
            path=posixpath.join(directory, sub_path) if sub_path else directory,
            env=[{"name": "HF_HUB_OFFLINE", "value": "1"}],
            mounts=[{"name": volume, "mountPath": directory, "readOnly": True}],
            volumes=[{"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
        )
    name = posixpath.basename(source.location.split("?", 1)[0].rstrip("/")) or "model"
    target = posixpath.join(directory, name)
    return StagedSource(
        path=target,
        env=[{"name": "HF_HUB_OFFLINE", "value": "1"}],
        mounts=[{"name": volume, "mountPath": directory, "readOnly": True}],
        volumes=[{"name": volume, "emptyDir": {}}],
        init_containers=[_downloader(source, settings, target, single_file, volume, directory)],
    )


def stage_adapter(
    model: ModelSpec, settings: base.RuntimeSettings, single_file: bool = True
) -> StagedSource | None:
    """The model's LoRA adapter, staged like weights in a volume of its own (None without one): a file
    (llama.cpp's adapter GGUF) or, with ``single_file`` False, a directory (a PEFT adapter for vLLM)."""
    if model.adapter is None:
        return None
    return stage(
        model,
        settings,
        single_file=single_file,
        volume=ADAPTER_VOLUME,
        directory=ADAPTERS_DIR,
        source=model.adapter,
    )


def _downloader(
    source: ModelSource,
    settings: base.RuntimeSettings,
    target: str,
    single_file: bool,
    volume: str = VOLUME,
    directory: str = MODELS_DIR,
) -> dict[str, Any]:
    """Init container fetching an s3:// object/prefix or an http(s):// file into the shared volume (one per
    volume: ``download`` for the weights, ``download-<volume>`` for anything else)."""
    if source.scheme == "s3":
        image = settings.s3_download_image
        command = ["flotilla", "objects", "cp", source.uri, target]
        if not single_file:
            command.append("--recursive")
        if source.endpoint:
            command += ["--endpoint-url", source.endpoint]
    else:
        image = settings.http_download_image
        command = [
            "curl",
            "--fail",
            "--location",
            "--silent",
            "--show-error",
            "--retry",
            "3",
            "--output",
            target,
        ]
        command.append(source.uri)
    spec: dict[str, Any] = {
        "name": "download" if volume == VOLUME else f"download-{volume}",
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "env": [{"name": "HOME", "value": "/tmp"}],
        "securityContext": base.container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": volume, "mountPath": directory}],
        "terminationMessagePolicy": base.TERMINATION_MESSAGE_POLICY,
    }
    if source.credentials_secret:
        spec["envFrom"] = [{"secretRef": {"name": source.credentials_secret}}]
    for name, ref in (("AWS_ACCESS_KEY_ID", source.access_key_id),
                      ("AWS_SECRET_ACCESS_KEY", source.secret_access_key)):  # fmt: skip
        if ref is not None:
            spec["env"].append(base.secret_env(name, ref))
    return spec
