"""The pack-serve config: which GGUF models one process serves, with what threads and context.

A pydantic model, so the file's mistakes are reported by field before Ray starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flotilla.errors import UsageError

# A model's name is a URL path segment (/<name>/v1/...); "v1" would shadow the pack's own /v1/models.
ModelName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$")]


class PackModel(BaseModel):
    """One model of the pack: a llama.cpp deployment answering under ``/<name>/v1/``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: ModelName
    gguf: Path = Field(description="the GGUF file's path")
    context_length: int = Field(2048, alias="contextLength", ge=64, description="llama.cpp n_ctx")
    threads: int = Field(1, ge=1, le=256, description="CPU threads: the model's CPU share from the plan")
    chat_format: str | None = Field(
        None,
        alias="chatFormat",
        description="llama-cpp-python chat format (e.g. gemma) when the GGUF's template is not picked up",
    )


class PackServeConfig(BaseModel):
    """What ``flotilla pack-serve --config FILE`` reads."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    models: list[PackModel] = Field(min_length=1)
    max_loaded: int | None = Field(
        None, alias="maxLoaded", ge=1, description="models kept loaded; least recently used are unloaded"
    )
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)

    @model_validator(mode="after")
    def _names(self) -> PackServeConfig:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique: {', '.join(duplicates)}")
        if "v1" in names:
            raise ValueError("a model may not be named v1 (the pack's /v1/models route)")
        return self

    @property
    def resident(self) -> int:
        """How many models stay loaded at once."""
        return min(self.max_loaded or len(self.models), len(self.models))


def load(path: Path) -> PackServeConfig:
    """Read and validate ``path``; every mistake is a one-line UsageError naming the field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not YAML: {exc}") from None
    return validate(raw, str(path))


def validate(raw: object, where: str) -> PackServeConfig:
    """A config from already-parsed data (a file's, or a RayService's serveConfigV2 `args`); every mistake
    is a one-line UsageError naming ``where`` and the field, and every GGUF file must exist."""
    try:
        config = PackServeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(f"{where}: {problems}") from None
    missing = [f"{m.name}: {m.gguf}" for m in config.models if not m.gguf.is_file()]
    if missing:
        raise UsageError(f"{where}: GGUF file not found: {', '.join(missing)}")
    return config
