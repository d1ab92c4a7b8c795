"""`flotilla distill finetune` on bad input: one line on stderr naming the problem, exit code 2 (bad input) or
1 (the fine-tune cannot run), never a traceback. Run as the real command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

OPERATOR = Path(__file__).resolve().parents[3] / "operator"
GOOD = {"messages": [{"role": "user", "content": "6 x 7?"}, {"role": "assistant", "content": "#### 42"}]}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(OPERATOR)}
    argv = [sys.executable, "-m", "flotilla.cli", "distill", "finetune", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 60)  # a header and nothing else: no model loads from it
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "no such file"),
        ("", "no examples"),
        ('{"messages": [{"role": "user", "content": "hi"}]}\n{not json\n', ":1: expected an openai-chat row"),
        (json.dumps(GOOD) + "\n{not json\n", ":2: not JSON"),
        (json.dumps({"conversations": []}) + "\n", ":1: expected an openai-chat row"),
        (json.dumps({"messages": [GOOD["messages"][0], {"role": "assistant", "content": " "}]}), "non-empty"),
        (json.dumps({"messages": [{"role": "bot", "content": "x"}, GOOD["messages"][1]]}), "role"),
    ],
)
def test_bad_data_is_one_line_and_exit_2(tmp_path: Path, base: Path, data: str | None, expected: str) -> None:
    path = tmp_path / "train.jsonl"
    if data is not None:
        path.write_text(data)
    done = _run("--data", str(path), "--base", str(base), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.startswith("flotilla distill: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_bad_base_and_flags(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(GOOD) + "\n")
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"PK\3\4 not a model")
    for args, expected in [
        (["--base", str(tmp_path / "missing.gguf")], "no such file"),
        (["--base", str(not_gguf)], "not a GGUF file"),
        (["--base", str(not_gguf), "--steps", "0"], "must be at least 1"),
        (["--base", str(not_gguf), "--method", "full"], "invalid choice"),
        (["--base", str(tmp_path)], "a directory without config.json"),
        (["--base", "hf://just-a-name"], "expected hf://ORG/REPO[@REVISION]"),
    ]:
        done = _run("--data", str(data), "--out", str(tmp_path / "out"), *args)
        assert done.returncode == 2, (args, done.stderr)
        assert expected in done.stderr and "Traceback" not in done.stderr


def test_a_base_that_cannot_load_fails_with_one_line(tmp_path: Path, base: Path) -> None:
    """Exit 1: without the ``finetune`` extra the message says how to install it; with it, that the base does
    not load. Either way one line, nothing written."""
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(GOOD) + "\n")
    done = _run("--data", str(data), "--base", str(base), "--out", str(tmp_path / "out"))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "finetune" in done.stderr or "cannot load" in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_hf_format_base_that_cannot_load_fails_with_one_line(tmp_path: Path) -> None:
    """A directory with config.json takes the HF-format path (trl + peft): without the extra it says how to
    install it; with it, that the base does not load. One line, exit 1, nothing written."""
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(GOOD) + "\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    done = _run("--data", str(data), "--base", str(model), "--out", str(tmp_path / "out"))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "finetune" in done.stderr or "cannot load" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("base_kind", ["gguf", "hf"])
def test_without_the_finetune_extra_both_paths_say_what_to_install(tmp_path: Path, base_kind: str) -> None:
    """torch blocked (as on a machine without the extra): one line naming the extra, exit 1, no output."""
    data = tmp_path / "train.jsonl"
    turns = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "#### 4"}]
    data.write_text(json.dumps({"messages": turns}) + "\n")
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF" + bytes(60))
    if base_kind == "hf":
        base = tmp_path / "hf"
        base.mkdir()
        (base / "config.json").write_text("{}")
    argv = ["distill", "finetune", "--data", str(data), "--base", str(base), "--out", str(tmp_path / "out")]
    blocked = "import sys; sys.modules['torch'] = None; from flotilla.cli import main"
    script = f"{blocked}; sys.exit(main({argv!r}))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "the fine-tune needs the 'finetune' extra (" in done.stderr and "pip install" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
