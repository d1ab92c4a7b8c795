"""LoRA fine-tuning of an HF-format model (a vllm model's weights): trl's SFTTrainer with a peft LoRA config.

The GPU path of a training Job (docs/distillation.md, "GPU LoRA"): the result is a standard PEFT adapter
directory (``adapter_config.json``, ``adapter_model.safetensors``) that vLLM serves with
``--enable-lora --lora-modules``. The same code runs on CPU (fp32) for the tests; on CUDA it trains in bf16
(fp16 where the GPU has no bf16) with gradient checkpointing.

Why trl: its SFTTrainer is the maintained way to fine-tune HF causal LMs on prompt/completion pairs (loss on
the completion tokens only, the same rule as the GGUF path), and trl 1.16 installs next to the extra's torch,
transformers and peft pins without changing any of them (it adds datasets, pyarrow and
pandas: 0.28 GB more installed, beside 5.7 GB).

The prompt is the tokenizer's own chat template (what vLLM applies when it serves the adapter) when the model
has one; otherwise llama.cpp's ``gemma`` turn template, as the GGUF path renders it. Examples longer than
``max_tokens`` are cut at the end (trl keeps the start).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla import errors
from flotilla.distilling import examples
from flotilla.distilling.tuning import TARGET_MODULES, Settings, Trained, peak_rss_bytes, require

log = logging.getLogger(__name__)

HF_SCHEME = "hf://"
HF_FILES = ["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt", "*.tiktoken"]
"""What is downloaded of an hf:// repository: config, safetensors weights and tokenizer (not the GGUF, .bin
or ONNX copies many repositories also hold)."""
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
END_OF_TURN = "<end_of_turn>"


@dataclass(frozen=True)
class Result(Trained):
    """What the HF path did: the common figures, and what the manifest says of its base and template."""

    base_sha256: str
    template: str
    """``chat_template`` (the tokenizer's) or ``gemma`` (llama.cpp's turn template)."""
    device: str
    dtype: str


def is_hf_base(base: str) -> bool:
    """An HF-format base: ``hf://ORG/REPO[@REVISION]`` or a directory holding ``config.json``."""
    return base.startswith(HF_SCHEME) or (Path(base) / "config.json").is_file()


def _local(base: str) -> Path:
    """The base's directory: itself, or the hf:// repository's snapshot downloaded into HF_HOME."""
    if not base.startswith(HF_SCHEME):
        return Path(base)
    import huggingface_hub

    repo, _, revision = base.removeprefix(HF_SCHEME).partition("@")
    try:
        return Path(
            huggingface_hub.snapshot_download(repo, revision=revision or None, allow_patterns=HF_FILES)
        )
    except Exception as exc:  # gated, missing, no network: one line
        raise errors.FlotillaError(f"cannot download {base}: {exc}") from None


def directory_sha256(path: Path) -> str:
    """One digest of a model directory: every file's relative name and sha256, in name order."""
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts):
        inner = hashlib.sha256()
        with item.open("rb") as data:
            while chunk := data.read(1 << 20):
                inner.update(chunk)
        digest.update(f"{item.relative_to(path).as_posix()}\0{inner.hexdigest()}\n".encode())
    return digest.hexdigest()


def _rows(found: Sequence[examples.Example], chat: bool, template: str) -> list[dict[str, Any]]:
    """trl prompt/completion rows: conversational (the tokenizer's chat template) or plain text."""
    rows: list[dict[str, Any]] = []
    for example in found:
        if chat:
            prompt = [{"role": role, "content": content} for role, content in example.messages]
            rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": example.answer}]})
        else:
            rendered = examples.render_prompt(example.messages, template)
            rows.append({"prompt": rendered, "completion": example.answer.strip() + END_OF_TURN})
    return rows


def _dataset(rows: list[dict[str, Any]]) -> Any:
    """A ``datasets.Dataset`` of ``rows`` with its fingerprint given (the rows' sha256): the one datasets 5.2
    computes for a new in-memory dataset pickles its state with dill, which fails on this stack
    (``PicklingError: Can't pickle <class 'MonthDayNano'>``, with pyarrow 26 and 25 alike)."""
    import datasets
    import pyarrow

    fingerprint = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    table = datasets.table.InMemoryTable(pyarrow.Table.from_pylist(rows))
    return datasets.Dataset(table, fingerprint=fingerprint)


def finetune(
    found: Sequence[examples.Example],
    base: str,
    out: Path,
    settings: Settings,
    held_out: Sequence[examples.Example] = (),
) -> Result:
    """Train a LoRA adapter on ``found`` and save it as a PEFT directory in ``out``; the loss per answer token
    before and after is measured on ``held_out`` (else on up to 32 training examples)."""
    require("trl")
    import peft
    import torch
    import transformers
    import trl

    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads or os.cpu_count() or 1)
    cuda = torch.cuda.is_available()
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    started = time.monotonic()
    where = _local(base)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(where))
        model = transformers.AutoModelForCausalLM.from_pretrained(str(where), dtype=dtype)
    except Exception as exc:  # an unsupported architecture, missing files: one line, not a traceback
        raise errors.FlotillaError(f"cannot load {base} for training: {exc}") from None
    base_sha256 = directory_sha256(where)
    chat = bool(getattr(tokenizer, "chat_template", None))
    template = "chat_template" if chat else settings.template
    eos = None if chat or END_OF_TURN not in tokenizer.get_vocab() else END_OF_TURN
    train = _dataset(_rows(found, chat, settings.template))
    scored = _dataset(_rows(held_out or found[:32], chat, settings.template))
    steps = settings.steps
    if settings.epochs is not None:
        steps = max(1, math.ceil(settings.epochs * len(found) / settings.batch_size))
    lora = peft.LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=list(TARGET_MODULES),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with tempfile.TemporaryDirectory(prefix="flotilla-sft-") as scratch:
        config = trl.SFTConfig(
            output_dir=scratch,
            max_steps=steps,
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            lr_scheduler_type="linear",
            warmup_steps=min(5, steps),
            weight_decay=0.0,
            max_grad_norm=1.0,
            max_length=settings.max_tokens,
            completion_only_loss=True,
            eos_token=eos,
            bf16=dtype == torch.bfloat16,
            fp16=dtype == torch.float16,
            use_cpu=not cuda,
            gradient_checkpointing=cuda,  # memory on a GPU; on CPU it only costs time
            logging_steps=10,
            save_strategy="no",
            report_to=[],
            seed=settings.seed,
            data_seed=settings.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = trl.SFTTrainer(
            model=model,
            args=config,
            train_dataset=train,
            eval_dataset=scored,
            processing_class=tokenizer,
            peft_config=lora,
        )
        load_seconds = time.monotonic() - started
        loss_before = float(trainer.evaluate()["eval_loss"])
        tick = time.monotonic()
        trainer.train()
        train_seconds = time.monotonic() - tick
        loss_after = float(trainer.evaluate()["eval_loss"])
    out.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(str(out))
    if not (out / ADAPTER_WEIGHTS).is_file() or not (out / ADAPTER_CONFIG).is_file():
        raise errors.FlotillaError(f"peft wrote no {ADAPTER_WEIGHTS} and {ADAPTER_CONFIG} in {out}")
    return Result(
        steps=steps,
        examples=len(found),
        loss_before=loss_before,
        loss_after=loss_after,
        train_seconds=train_seconds,
        load_seconds=load_seconds,
        peak_rss_bytes=peak_rss_bytes(),
        base_sha256=base_sha256,
        template=template,
        device="cuda" if cuda else "cpu",
        dtype=str(dtype).removeprefix("torch."),
    )
