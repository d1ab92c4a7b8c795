"""The Ray images' Dockerfiles, read as text (no build): pins that must move together.

images/ray-vllm/Dockerfile (GPU packs, ray.serve.llm with vLLM) is not built here (no GPU, ~10 GB of CUDA
wheels), so this is its only check: a tagged base, every pip requirement pinned, Ray's version the one of
pyproject.toml's `ray` extra (what the built CPU image, images/ray/Dockerfile, installs) and vLLM's the one
Ray's own `llm` extra requires (read from the installed Ray's metadata), a non-root user.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VLLM = ROOT / "images" / "ray-vllm" / "Dockerfile"
CPU = ROOT / "images" / "ray" / "Dockerfile"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _pip_requirements(path: Path) -> list[str]:
    """Every argument of every `pip install` that is a requirement (not an option, not the package `.`)."""
    found = []
    for keyword, rest in _instructions(path):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", rest):
            words = shlex.split(command)
            if len(words) > 2 and words[0].endswith("pip") and words[1] == "install":
                found += [w for w in words[2:] if not w.startswith("-") and w != "." and "/" not in w]
    return found


def _ray_extra_pin() -> str:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["ray"]
    (pin,) = [r for r in extra if r.startswith("ray[")]
    match = re.fullmatch(r"ray\[serve\]==(\S+)", pin)
    assert match, f"pyproject's ray extra must pin ray[serve]==X, not {pin!r}"
    return match.group(1)


@pytest.mark.parametrize("path", [VLLM, CPU])
def test_base_image_is_tagged(path: Path) -> None:
    (default,) = [rest for keyword, rest in _instructions(path) if keyword == "ARG" and "BASE_IMAGE=" in rest]
    image = default.split("=", 1)[1]
    assert ":" in image and not image.endswith(":latest"), image
    first = next(rest for keyword, rest in _instructions(path) if keyword == "FROM")
    assert first.startswith("${BASE_IMAGE}")


def test_vllm_image_pins_ray_and_the_vllm_ray_requires() -> None:
    requirements = _pip_requirements(VLLM)
    assert requirements, "no pip install in the vLLM Dockerfile"
    assert all(
        re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*", r) for r in requirements
    ), requirements
    pins = {r.split("==")[0]: r.split("==")[1] for r in requirements}
    assert pins["ray[serve,llm]"] == _ray_extra_pin() == importlib.metadata.version("ray")
    wanted = [r for r in importlib.metadata.requires("ray") or [] if r.startswith("vllm") and "llm" in r]
    assert wanted, "the installed Ray has no llm extra naming vLLM"
    ray_vllm = re.search(r"==\s*([0-9][0-9A-Za-z.]*)", wanted[0])
    assert ray_vllm is not None and pins["vllm"] == ray_vllm.group(1), (pins["vllm"], wanted)


@pytest.mark.parametrize("path", [VLLM, CPU])
def test_runs_as_a_non_root_user_with_home_in_tmp(path: Path) -> None:
    instructions = _instructions(path)
    assert ("USER", "1000:1000") in instructions
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "HOME=/tmp" in env and "RAY_USAGE_STATS_ENABLED=0" in env
    assert any(keyword == "ENTRYPOINT" for keyword, _ in instructions)
    assert path.with_name("Dockerfile.dockerignore").is_file()


def test_cpu_image_installs_the_ray_extra_and_serves_packs() -> None:
    text = CPU.read_text()
    assert '["optional-dependencies"]["ray"]' in text  # the pin comes from pyproject.toml
    assert ("ENTRYPOINT", '["flotilla", "pack-serve"]') in _instructions(CPU)
