"""The fine-tune images' Dockerfiles and scripts/finetune-deps, read as text: one set of pins everywhere.

images/finetune/Dockerfile.gpu (a vllm base's GPU LoRA) is not built here (no GPU), so this is its check:
both images install the `finetune` extra as pyproject.toml pins it (read at build time), the extra pins trl
for the HF-format path, scripts/finetune-deps installs exactly those pins for the tests, and the GPU image
imports what the HF path needs and runs as a non-root user.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CPU = ROOT / "images" / "finetune" / "Dockerfile"
GPU = ROOT / "images" / "finetune" / "Dockerfile.gpu"


def _extra() -> list[str]:
    pins: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["finetune"]
    return pins


def test_the_extra_pins_every_package_and_trl_for_the_hf_path() -> None:
    pins = _extra()
    assert all(re.fullmatch(r"[a-z0-9-]+==\S+", pin) for pin in pins), pins
    assert {pin.split("==")[0] for pin in pins} >= {"torch", "transformers", "peft", "trl", "gguf"}


def test_finetune_deps_installs_the_extras_pins() -> None:
    script = (ROOT / "scripts" / "finetune-deps").read_text()
    (line,) = [line for line in script.splitlines() if line.startswith("pins=(")]
    assert line.removeprefix("pins=(").removesuffix(")").split() == _extra()


@pytest.mark.parametrize("path", [CPU, GPU])
def test_the_image_installs_the_extra_from_pyproject_offline(path: Path) -> None:
    text = path.read_text()
    assert '["optional-dependencies"]["finetune"]' in text
    assert "--no-index --find-links /ctx/wheels" in text
    assert "USER 1000:1000" in text
    assert re.search(r"RUN python -c 'import torch, transformers, peft, trl", text)


def test_the_gpu_image_asks_the_device_plugin_for_the_driver() -> None:
    text = GPU.read_text()
    assert "NVIDIA_VISIBLE_DEVICES=all" in text and "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in text
    assert (GPU.parent / "Dockerfile.gpu.dockerignore").read_text().splitlines()[1:] == (
        (CPU.parent / "Dockerfile.dockerignore").read_text().splitlines()[1:]
    )
