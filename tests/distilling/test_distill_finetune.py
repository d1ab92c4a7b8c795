"""A real CPU fine-tune: Gemma 3 270M learns the stand-in teacher's answer format from its answers.

The teacher (the stand-in provider in ``--teacher`` mode) answers 120 math prompts over HTTP;
`flotilla distill finetune` trains a LoRA adapter on them (torch + peft, the ``finetune`` extra);
ggml-org's llama-server loads the adapter (``--lora``) next to the unchanged base GGUF and answers 40
held-out prompts. The share of answers in the teacher's ``#### <number>`` format must rise from the base's
(which never uses it) to most of them.

Marked ``finetune`` and so deselected by default (addopts): it needs the ``finetune`` extra (~3 GB of
wheels, installed once by scripts/finetune-deps) and 2-20 min. Run: ``pytest -m finetune tests/distilling``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from distilkit import (
    answers,
    finetune_deps,
    format_share,
    run_finetune,
    serve,
    teacher_datasets,
)
from routerkit import gemma_gguf

pytestmark = [pytest.mark.llamacpp, pytest.mark.finetune, pytest.mark.timeout(2400)]

TRAIN, HELD_OUT, STEPS = 120, 40, 15


def test_finetuned_adapter_loads_in_llama_server_and_answers_like_the_teacher(tmp_path: Path) -> None:
    held_out = teacher_datasets(tmp_path, TRAIN, HELD_OUT, 16)
    out = tmp_path / "tuned"
    done = run_finetune(
        [
            "--data", str(tmp_path / "train.jsonl"), "--eval", str(tmp_path / "eval.jsonl"),
            "--base", str(gemma_gguf()), "--out", str(out), "--steps", str(STEPS), "--batch-size", "4",
        ],
        finetune_deps(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "lora" and manifest["examples"] == TRAIN and manifest["steps"] == STEPS
    assert manifest["loss_after"] < manifest["loss_before"] * 0.8, manifest

    base_server = serve(tmp_path, None, "llama-base")
    try:
        before = answers(base_server, held_out)
    finally:
        base_server.stop()
    tuned_server = serve(tmp_path, out / "adapter.gguf", "llama-tuned")
    try:
        after = answers(tuned_server, held_out)
        assert "lora" in tuned_server.proc.log().lower()
    finally:
        tuned_server.stop()
    share_before, share_after = format_share(before), format_share(after)
    assert share_before <= 0.1, before
    assert share_after >= 0.6 and share_after >= share_before + 0.5, after
