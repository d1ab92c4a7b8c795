"""LoRA fine-tuning of a GGUF model on CPU: torch + peft on the dequantised weights.

Why this tool (docs/distillation.md, "Fine-tuning"): llama.cpp's own ``llama-finetune`` (same source as the
wheel) aborts on Gemma 3 (``unsupported glu op for backward pass: GEGLU``) and trains full weights only; torch
+ peft trains a true low-rank adapter that llama.cpp loads next to the unchanged base.

Memory and time on 2 cores: the loss is computed on the answer tokens only, and the 262k-token output
projection runs on those positions only (not on every prompt token), which is most of the compute saved.
Needs the ``finetune`` extra (torch, transformers, peft); imported only when a fine-tune runs.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla import errors
from flotilla.api.distillation import LORA_RANK
from flotilla.distilling import examples

log = logging.getLogger(__name__)

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The linear layers the adapter trains: attention and MLP, as llama.cpp's LoRA loader maps them."""


@dataclass(frozen=True)
class Settings:
    """How to fine-tune; the defaults teach a 270M model a teacher's answer format in a few minutes."""

    steps: int = 30
    """Optimizer steps (each one batch); ``epochs`` overrides it when set."""
    epochs: float | None = None
    """Passes over the data, instead of ``steps``."""
    batch_size: int = 4
    learning_rate: float = 1e-3
    rank: int = LORA_RANK
    alpha: float = 32.0
    """LoRA scale numerator: the update is ``alpha / rank * B @ A`` (peft and llama.cpp agree)."""
    max_tokens: int = 384
    """Examples longer than this (prompt + answer tokens) are cut from the prompt's start."""
    seed: int = 0
    threads: int | None = None
    """torch threads (default: all cores)."""
    template: str = "gemma"


@dataclass(frozen=True)
class Trained:
    """What any fine-tune did, for the manifest (both paths)."""

    steps: int
    examples: int
    loss_before: float
    loss_after: float
    train_seconds: float
    load_seconds: float
    peak_rss_bytes: int


@dataclass(frozen=True)
class Result(Trained):
    """What the GGUF path did: the common figures and the adapter's tensors."""

    lora_tensors: dict[str, Any]
    """GGUF tensor name -> float32 numpy array (``*.lora_a`` / ``*.lora_b``)."""


@dataclass(frozen=True)
class _Tokens:
    ids: list[int]
    answer_from: int  # the first answer token's index


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def require(*more: str) -> None:
    """torch, transformers, peft (and ``more``) importable, or one clear error naming what is missing."""
    for module in ("peft", "torch", "transformers", *more):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise errors.FlotillaError(
                f"the fine-tune needs the 'finetune' extra ({exc.name or module} is missing): "
                "pip install 'flotilla[finetune]' (scripts/finetune-deps for the tests)"
            ) from None


def tokenise(
    found: Sequence[examples.Example], base: Path, settings: Settings
) -> tuple[list[_Tokens], Callable[[str], list[int]]]:
    """Token ids with llama.cpp's own tokenizer from the GGUF (exactly what serving sees)."""
    import llama_cpp

    try:
        vocab = llama_cpp.Llama(str(base), vocab_only=True, verbose=False)
    except Exception as exc:  # llama.cpp says only "Failed to load model from file": one line, no traceback
        raise errors.FlotillaError(f"cannot load {base} (llama.cpp's tokenizer): {exc}") from None

    def encode(text: str, bos: bool = False) -> list[int]:
        ids: list[int] = vocab.tokenize(text.encode(), add_bos=bos, special=True)
        return ids

    out = []
    for example in found:
        prompt = encode(examples.render_prompt(example.messages, settings.template), bos=True)
        answer = encode(examples.render_answer(example.answer, settings.template))
        keep = max(1, settings.max_tokens - len(answer))
        if len(prompt) > keep:
            prompt = prompt[:1] + prompt[len(prompt) - keep + 1 :]  # keep BOS, cut the oldest text
        answer = answer[: settings.max_tokens - len(prompt)]
        out.append(_Tokens(ids=prompt + answer, answer_from=len(prompt)))
    return out, encode


def _batches(items: list[_Tokens], size: int, steps: int, seed: int) -> list[list[_Tokens]]:
    """``steps`` batches: shuffled epochs, each example once per epoch; within a window of 8 batches the
    examples are grouped by length, so a batch pads little (padding is compute spent on nothing)."""
    rng, out = random.Random(seed), list[list[_Tokens]]()
    while len(out) < steps:
        order = list(items)
        rng.shuffle(order)
        epoch: list[list[_Tokens]] = []
        for start in range(0, len(order), size * 8):
            window = sorted(order[start : start + size * 8], key=lambda t: len(t.ids))
            epoch += [window[i : i + size] for i in range(0, len(window), size)]
        rng.shuffle(epoch)
        out += epoch
    return out[:steps]


def _answer_loss(model: Any, batch: Sequence[_Tokens]) -> Any:
    """Mean cross-entropy over the answer tokens; logits only where an answer token is predicted."""
    import torch

    width = max(len(t.ids) for t in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    predicts = torch.zeros((len(batch), width), dtype=torch.bool)  # position i predicts token i + 1
    for row, item in enumerate(batch):
        ids[row, : len(item.ids)] = torch.tensor(item.ids)
        mask[row, : len(item.ids)] = 1
        predicts[row, item.answer_from - 1 : len(item.ids) - 1] = True
    labels = torch.roll(ids, -1, dims=1)[predicts]
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = inner.model(input_ids=ids, attention_mask=mask).last_hidden_state[predicts]
    logits = inner.lm_head(hidden).float()
    cap = getattr(inner.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits, labels)


def _mean_loss(model: Any, items: list[_Tokens], size: int) -> float:
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            answer_tokens = sum(len(t.ids) - t.answer_from for t in batch)
            total += float(_answer_loss(model, batch)) * answer_tokens
            count += answer_tokens
    return total / max(1, count)


def _gguf_name(peft_name: str) -> tuple[str, str] | None:
    """peft's ``...layers.N.self_attn.q_proj.lora_A.weight`` -> (``blk.N.attn_q.weight``, ``lora_a``)."""
    mapping = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    marker = ".layers."
    if marker not in peft_name:
        return None
    rest = peft_name.split(marker, 1)[1]
    block, _, module = rest.partition(".")
    for source, target in mapping.items():
        for side in ("A", "B"):
            if module == f"{source}.lora_{side}.weight":
                return f"blk.{int(block)}.{target}.weight", f"lora_{side.lower()}"
    return None


def finetune(
    found: Sequence[examples.Example],
    base: Path,
    settings: Settings,
    held_out: Sequence[examples.Example] = (),
) -> Result:
    """Train a LoRA adapter on ``found``; loss before/after is measured on ``held_out`` (else on up to 32
    training examples)."""
    require()
    import peft
    import torch
    import transformers

    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads or os.cpu_count() or 1)
    started = time.monotonic()
    train, _ = tokenise(found, base, settings)
    scored, _ = tokenise(held_out, base, settings) if held_out else (train[:32], None)
    try:  # transformers dequantises the GGUF to float32 torch weights
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(base.parent), gguf_file=base.name, dtype=torch.float32
        )
    except Exception as exc:  # an unsupported architecture, a truncated file: one line, not a traceback
        raise errors.FlotillaError(f"cannot load {base} for training: {exc}") from None
    config = peft.LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=list(TARGET_MODULES),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(model, config)
    load_seconds = time.monotonic() - started
    steps = settings.steps
    if settings.epochs is not None:
        steps = max(1, math.ceil(settings.epochs * len(train) / settings.batch_size))
    model.eval()
    loss_before = _mean_loss(model, scored, settings.batch_size)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 5) * max(0.1, 1 - step / steps)
    )
    model.train()
    tick = time.monotonic()
    for step, batch in enumerate(_batches(train, settings.batch_size, steps, settings.seed), start=1):
        loss = _answer_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 1 or step % 10 == 0 or step == steps:
            log.info("step %d/%d loss %.4f (%.1f s)", step, steps, float(loss), time.monotonic() - tick)
    train_seconds = time.monotonic() - tick
    model.eval()
    loss_after = _mean_loss(model, scored, settings.batch_size)
    tensors: dict[str, Any] = {}
    for name, value in peft.get_peft_model_state_dict(model).items():
        mapped = _gguf_name(name)
        if mapped is not None:
            tensors[f"{mapped[0]}.{mapped[1]}"] = value.detach().float().contiguous().numpy()
    if not tensors:
        raise errors.FlotillaError("the trained model has no LoRA tensors that llama.cpp can load")
    return Result(
        steps=steps,
        examples=len(train),
        loss_before=loss_before,
        loss_after=loss_after,
        train_seconds=train_seconds,
        load_seconds=load_seconds,
        peak_rss_bytes=peak_rss_bytes(),
        lora_tensors=tensors,
    )
