"""`flotilla classify` as a real subprocess: order, fields, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml


def classify(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "classify", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PROMPTS = [
    {"prompt": "Write a Rust function that parses a CSV line.", "id": 1},
    {"prompt": "What is 17% of 340?", "extra": {"ignored": True}},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "Write a sonnet about rain."}]}]},
    {"prompt": "Any tips for a first trip to Japan?"},
]


def test_order_and_fields_with_presets() -> None:
    stdin = "\n".join(json.dumps(p) for p in PROMPTS) + "\n\n"
    done = classify("--tasks", "code,math,writing", "--default", "chat", stdin=stdin)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["task"] for line in lines] == ["code", "math", "writing", "chat"]
    for line in lines:
        assert set(line) == {"task", "score", "reason", "probabilities", "micros"}
        assert 0.0 <= line["score"] <= 1.0
        assert set(line["probabilities"]) == {"code", "math", "writing", "chat"}
        assert line["probabilities"][line["task"]] == line["score"]
        assert isinstance(line["micros"], int) and line["micros"] >= 0
    assert lines[3]["reason"] == "default"


def test_config_file(tmp_path: Path) -> None:
    config = {
        "defaultTask": "small",
        "tasks": [{"name": "small"}, {"name": "sql", "match": {"keywords": ["select", "join"]}}],
        "classifier": {"threshold": 0.5},
    }
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    done = classify(
        "--config", str(path), stdin='{"prompt": "why is my LEFT JOIN slow"}\n{"prompt": "hello"}\n'
    )
    assert done.returncode == 0, done.stderr
    tasks = [json.loads(line)["task"] for line in done.stdout.splitlines()]
    assert tasks == ["sql", "small"]


def test_bad_line_names_the_line_and_exits_2() -> None:
    stdin = '{"prompt": "hello"}\n{"prompt": 5}\n{"prompt": "never reached"}\n'
    done = classify("--tasks", "code", stdin=stdin)
    assert done.returncode == 2
    assert len(done.stdout.splitlines()) == 1
    assert done.stderr.strip() == 'flotilla classify: line 2: "prompt" must be a string'
    assert "Traceback" not in done.stderr


def test_other_bad_inputs() -> None:
    cases = {
        "not json\n": "line 1: not valid JSON",
        "[1, 2]\n": "line 1: expected a JSON object, got list",
        '{"text": "x"}\n': 'line 1: needs a "prompt" string or a "messages" list',
        '{"messages": "x"}\n': 'line 1: "messages" must be a list of message objects',
    }
    for stdin, message in cases.items():
        done = classify("--tasks", "code", stdin=stdin)
        assert done.returncode == 2, stdin
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_bad_flags_and_files(tmp_path: Path) -> None:
    done = classify("--tasks", "code,poetry", stdin="")
    assert done.returncode == 2
    assert "unknown preset(s) poetry" in done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("defaultTask: nope\ntasks: [{name: code}]\n")
    done = classify("--config", str(broken), stdin="")
    assert done.returncode == 2
    assert "not a valid router config" in done.stderr and "Traceback" not in done.stderr
    done = classify("--config", str(tmp_path / "missing.yaml"), stdin="")
    assert done.returncode == 2 and "cannot read" in done.stderr
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("defaultTask: chat\ntasks: [{name: chat}, {name: verse, preset: poetry}]\n")
    done = classify("--config", str(unknown), stdin="")
    assert done.returncode == 2 and "unknown preset 'poetry'" in done.stderr


def test_invalid_utf8_names_the_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "classify", "--tasks", "code"],
        input=b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n',
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stdout.splitlines()) == 1
    assert b"line 2: not valid UTF-8" in done.stderr and b"Traceback" not in done.stderr
