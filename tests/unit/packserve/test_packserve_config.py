"""The pack-serve config file: every mistake is one line naming the field, before Ray starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.cli import main
from flotilla.errors import UsageError
from flotilla.packserve.config import load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pack.yaml"
    path.write_text(text)
    return path


def test_a_valid_config_loads(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    config = load(write(tmp_path, f"maxLoaded: 5\nmodels: [{{name: a, gguf: {gguf}, threads: 2}}]\n"))
    assert config.resident == 1 and config.models[0].threads == 2 and config.models[0].context_length == 2048


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: []", "models: List should have at least 1 item"),
        ("models: [{name: A, gguf: /x}]", "models.0.name: String should match pattern"),
        (
            "models: [{name: a, gguf: /x, threads: 0}]",
            "models.0.threads: Input should be greater than or equal to 1",
        ),
        ("models: [{name: a, gguf: /x}, {name: a, gguf: /x}]", "model names must be unique: a"),
        ("models: [{name: v1, gguf: /x}]", "may not be named v1"),
        ("models: [{name: a, gguf: /nowhere.gguf}]", "GGUF file not found: a: /nowhere.gguf"),
        ("models: [{name: a, gguf: /x, color: red}]", "models.0.color: Extra inputs are not permitted"),
        ("models: [", "is not YAML"),
    ],
)
def test_mistakes_are_one_line_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        load(write(tmp_path, text))


def test_the_cli_exits_2_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack-serve", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "flotilla pack-serve: cannot read" in capsys.readouterr().err
