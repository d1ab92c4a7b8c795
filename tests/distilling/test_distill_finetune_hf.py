"""A real fine-tune on the HF-format path (a vllm model's weights), on CPU: trl's SFTTrainer + peft.

The base is an HF-format directory transformers makes from the real Gemma 3 270M GGUF (dequantised to float32,
Gemma's chat template added, as HF Gemma repositories ship it). The stand-in teacher answers math prompts;
`flotilla distill finetune --base DIR` writes a PEFT adapter directory; peft loads it onto the base
(``PeftModel.from_pretrained``, what vLLM's ``--lora-modules`` reads) and its greedy answers to held-out
prompts move to the teacher's ``#### <number>`` format, which the base never uses.

Marked ``finetune`` (deselected by default: the extra's ~6 GB install, a few minutes on 2 cores). Run:
``pytest -m finetune tests/distilling/test_distill_finetune_hf.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from distilkit import (
    PYTHON,
    finetune_deps,
    format_share,
    hf_model,
    run_finetune,
    teacher_datasets,
)
from routerkit import gemma_gguf

from flotilla.api.distillation import LORA_RANK
from flotilla.distilling.tuning import TARGET_MODULES

pytestmark = [pytest.mark.finetune, pytest.mark.timeout(2400)]

TRAIN, HELD_OUT, STEPS = 48, 8, 12

COMPARE = """
import json, sys, torch, transformers, peft
base_dir, adapter_dir, prompts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
tokenizer = transformers.AutoTokenizer.from_pretrained(base_dir)
model = transformers.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
def run(m):
    texts, logits = [], []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.no_grad():
            logits.append(m(**ids).logits[0, -1])
            out = m.generate(**ids, max_new_tokens=8, do_sample=False)
        texts.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return texts, torch.stack(logits)
base_texts, base_logits = run(model)
tuned = peft.PeftModel.from_pretrained(model, adapter_dir)
tuned.eval()
tuned_texts, tuned_logits = run(tuned)
print(json.dumps({"base": base_texts, "tuned": tuned_texts,
                  "logit_change": float((tuned_logits - base_logits).abs().max())}))
"""


def test_hf_finetune_writes_a_peft_adapter_that_moves_the_model_to_the_teacher(tmp_path: Path) -> None:
    deps = finetune_deps()
    held_out = teacher_datasets(tmp_path, TRAIN, HELD_OUT)
    base = hf_model(gemma_gguf(), tmp_path / "gemma-hf", deps)
    out = tmp_path / "tuned"
    done = run_finetune(
        [
            "--data", str(tmp_path / "train.jsonl"), "--eval", str(tmp_path / "eval.jsonl"),
            "--base", str(base), "--out", str(out), "--steps", str(STEPS), "--batch-size", "4",
        ],
        deps,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]

    manifest = json.loads((out / "manifest.json").read_text())
    print("manifest:", json.dumps(manifest))  # the numbers, with -rA
    assert manifest["method"] == "lora" and manifest["steps"] == STEPS and manifest["examples"] == TRAIN
    assert manifest["adapter"] == "adapter_model.safetensors" and manifest["template"] == "chat_template"
    assert manifest["loss_on"] == "eval"
    assert manifest["loss_after"] < manifest["loss_before"] * 0.8, manifest
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == LORA_RANK and config["lora_alpha"] == 32
    assert set(config["target_modules"]) == set(TARGET_MODULES)
    assert not (out / "adapter.gguf").exists()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(deps), os.environ.get("PYTHONPATH", "")])}
    compared = subprocess.run(
        [PYTHON, "-c", COMPARE, str(base), str(out), json.dumps(held_out)],
        capture_output=True, text=True, env=env, timeout=1200, check=False,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stderr[-4000:]
    result = json.loads(compared.stdout.strip().splitlines()[-1])
    print("answers:", json.dumps(result))
    assert result["logit_change"] > 1.0, result
    assert result["tuned"] != result["base"], result
    share_before, share_after = format_share(result["base"]), format_share(result["tuned"])
    assert share_before <= 0.1, result
    assert share_after >= 0.6, result
