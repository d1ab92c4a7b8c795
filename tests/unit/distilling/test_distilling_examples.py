"""Training pairs: the prompt rendered exactly as llama.cpp's ``gemma`` template renders it when serving, the
dataset hash, and peft's tensor names mapped to the GGUF names llama.cpp's LoRA loader expects."""

from __future__ import annotations

from pathlib import Path

from flotilla.distilling import examples, tuning


def test_prompt_is_llama_cpp_gemma_template() -> None:
    messages = (("system", " Be brief. "), ("user", " 6 x 7? "), ("assistant", "42"), ("user", "and 6 x 8?"))
    assert examples.render_prompt(messages) == (
        "<start_of_turn>user\nBe brief.\n\n6 x 7?<end_of_turn>\n"
        "<start_of_turn>model\n42<end_of_turn>\n"
        "<start_of_turn>user\nand 6 x 8?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert examples.render_answer(" #### 48 ") == "#### 48<end_of_turn>\n"


def test_load_hashes_the_file_and_keeps_the_conversation(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},'
        ' {"role": "assistant", "content": "#### 1"}]}\n\n'
    )
    found, digest = examples.load(path)
    assert found == [examples.Example(messages=(("user", "hi"),), answer="#### 1")]
    path.write_text(path.read_text() + " ")
    assert examples.load(path)[1] != digest


def test_peft_names_map_to_llama_cpp_lora_names() -> None:
    prefix = "base_model.model.model.layers.7."
    assert tuning._gguf_name(prefix + "self_attn.q_proj.lora_A.weight") == ("blk.7.attn_q.weight", "lora_a")
    assert tuning._gguf_name(prefix + "self_attn.o_proj.lora_B.weight") == (
        "blk.7.attn_output.weight",
        "lora_b",
    )
    assert tuning._gguf_name(prefix + "mlp.down_proj.lora_A.weight") == ("blk.7.ffn_down.weight", "lora_a")
    assert tuning._gguf_name("base_model.model.lm_head.lora_A.weight") is None
