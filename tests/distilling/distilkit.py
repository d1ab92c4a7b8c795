"""What the fine-tune tests and bench/distillation.py share: teacher pairs from the real stand-in teacher,
the ``finetune`` extra's directory, and agreement with the teacher's format measured on llama.cpp.

The teacher is ``python -m flotilla.standin --teacher --answers ../shared/data/math-answers.jsonl``, asked
over HTTP like a cloud model: its answers start ``#### <number>``, a format the base Gemma 3 270M never uses,
so the share of a model's answers in that format measures how far a fine-tune moved it toward the teacher.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # ggml-org's llama-server kit
sys.path.insert(0, str(ROOT / "tests" / "router"))  # the process kit
from llamakit import ALIAS, LlamaServer  # noqa: E402
from routerkit import PYTHON, Proc, free_port  # noqa: E402

MATH = ROOT.parent / "shared" / "data" / "math-answers.jsonl"
TEACHER_FORMAT = re.compile(r"^\s*####\s*\$?-?[\d,]*\d")
"""The teacher's answer format: ``#### <number>`` first."""


def random_adapter(path: Path, base: Path, rank: int = 4) -> None:
    """A LoRA adapter GGUF for ``base``: A and B for every attention query projection (peft's layout: A is
    rank x in, B is out x rank), seeded: deterministic, and far from zero so the adapted model answers
    otherwise than the base."""
    import gguf
    import numpy as np

    from flotilla.distilling import adapters

    rng = np.random.default_rng(7)
    tensors: dict[str, Any] = {}
    for tensor in gguf.GGUFReader(str(base)).tensors:
        if tensor.name.endswith(".attn_q.weight"):
            columns, rows = (int(n) for n in tensor.shape)  # GGUF order: inputs first
            tensors[f"{tensor.name}.lora_a"] = rng.normal(0, 0.5, (rank, columns)).astype(np.float32)
            tensors[f"{tensor.name}.lora_b"] = rng.normal(0, 0.5, (rows, rank)).astype(np.float32)
    assert tensors, "no attention projections found in the base GGUF"
    adapters.write(path, adapters.architecture(base), alpha=float(rank), tensors=tensors, name="random")


def math_rows() -> list[dict[str, Any]]:
    with MATH.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def finetune_deps() -> Path:
    """The ``finetune`` extra's directory (scripts/finetune-deps installs it once, then prints it)."""
    found = subprocess.run(
        [str(ROOT / "scripts" / "finetune-deps")], capture_output=True, text=True, check=False, timeout=1800
    )
    if found.returncode != 0:
        raise AssertionError(f"scripts/finetune-deps failed:\n{found.stderr[-3000:]}")
    return Path(found.stdout.strip())


class Teacher:
    """The stand-in provider in teacher mode on a free loopback port; ``stop`` ends it by PID."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            PYTHON,
            "-m",
            "flotilla.standin",
            "--port",
            str(self.port),
            "--teacher",
            "--answers",
            str(MATH),
        ]
        self.proc = Proc("teacher", argv, log_dir)
        self.proc.wait_http(f"{self.url}/healthz", 30)

    def answer(self, prompt: str, max_tokens: int) -> str:
        body = {
            "model": "teacher",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
        }
        response = httpx.post(f"{self.url}/v1/chat/completions", json=body, timeout=30)
        response.raise_for_status()
        content: str = response.json()["choices"][0]["message"]["content"]
        return content

    def stop(self) -> None:
        self.proc.stop()


def write_pairs(path: Path, teacher: Teacher, prompts: Sequence[str], max_tokens: int) -> None:
    """openai-chat JSONL (the shape ``flotilla traces export`` writes) of the teacher's answers."""
    with path.open("w", encoding="utf-8") as out:
        for prompt in prompts:
            messages = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": teacher.answer(prompt, max_tokens)},
            ]
            out.write(json.dumps({"messages": messages}) + "\n")


def run_finetune(
    args: Sequence[str], deps: Path | None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """``flotilla distill finetune ARGS`` in a subprocess, the extra's directory on its PYTHONPATH."""
    paths = [str(ROOT / "operator"), *([str(deps)] if deps else []), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    argv = [PYTHON, "-m", "flotilla.cli", "distill", "finetune", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def serve(log_dir: Path, adapter: Path | None, name: str) -> LlamaServer:
    """ggml-org's llama-server with the Gemma GGUF (and the adapter) and llama.cpp's built-in ``gemma`` chat
    template. ``--no-jinja`` matters: with jinja on (llama-server's default) ``--chat-template gemma`` is
    taken as a jinja template whose whole text is "gemma", and every prompt becomes that one word."""
    extra = ["--no-jinja", "--chat-template", "gemma", *(["--lora", str(adapter)] if adapter else [])]
    return LlamaServer(log_dir, name=name, extra=extra)


def answers(server: LlamaServer, prompts: Sequence[str], max_tokens: int = 8) -> list[str]:
    out = []
    for prompt in prompts:
        body = {
            "model": ALIAS,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
        response.raise_for_status()
        out.append(str(response.json()["choices"][0]["message"]["content"]))
    return out


def format_share(texts: Sequence[str]) -> float:
    """Share of ``texts`` in the teacher's ``#### <number>`` format."""
    return sum(bool(TEACHER_FORMAT.match(t)) for t in texts) / max(1, len(texts))


def final_number(text: str) -> str | None:
    match = TEACHER_FORMAT.match(text)
    return re.sub(r"[^\d-]", "", match.group(0)) if match else None


GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set system = '' %}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set system = message['content'] | trim + '\n\n' %}"
    "{% else %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (system if role == 'user' else '') + message['content'] | trim"
    " + '<end_of_turn>\n' }}{% if role == 'user' %}{% set system = '' %}{% endif %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
"""Gemma's turn format as a jinja chat template (what HF Gemma repositories ship and vLLM applies): the GGUF
carries none, so the HF-format copy of it gets this one."""

HF_MODEL_SCRIPT = """
import sys, torch, transformers
gguf, out, template = sys.argv[1], sys.argv[2], sys.argv[3]
from pathlib import Path
path = Path(gguf)
model = transformers.AutoModelForCausalLM.from_pretrained(
    str(path.parent), gguf_file=path.name, dtype=torch.float32
)
tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
tokenizer.chat_template = template
# dequantised to float32 already: drop the GGUF "quantization" marker, which save_pretrained refuses
model.hf_quantizer = None
model.is_quantized = False
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.save_pretrained(out)
tokenizer.save_pretrained(out)
"""


def hf_model(gguf: Path, out: Path, deps: Path) -> Path:
    """An HF-format model directory (config.json, safetensors, tokenizer with a chat template) made from the
    real Gemma 3 270M GGUF by transformers (dequantised to float32), once per ``out``."""
    if (out / "config.json").is_file():
        return out
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(deps), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [PYTHON, "-c", HF_MODEL_SCRIPT, str(gguf), str(out), GEMMA_CHAT_TEMPLATE],
        capture_output=True, text=True, env=env, timeout=1200, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"making the HF-format model failed:\n{done.stderr[-3000:]}")
    return out


def teacher_datasets(directory: Path, train: int, held_out: int, evaluated: int | None = None) -> list[str]:
    """``train.jsonl`` (the first ``train`` math prompts) and ``eval.jsonl`` (the first ``evaluated`` of the
    last ``held_out``) in ``directory``, answered by the stand-in teacher; the held-out prompts."""
    rows = math_rows()
    train_prompts = [r["prompt"] for r in rows[:train]]
    held_out_prompts = [r["prompt"] for r in rows[-held_out:]]
    teacher = Teacher(directory)
    try:
        write_pairs(directory / "train.jsonl", teacher, train_prompts, max_tokens=12)
        write_pairs(directory / "eval.jsonl", teacher, held_out_prompts[:evaluated], max_tokens=12)
    finally:
        teacher.stop()
    return held_out_prompts
