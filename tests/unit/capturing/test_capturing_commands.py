"""`flotilla traces export` on a directory source: the files it writes, and one-line errors with exit code 2
(bad arguments) or 1 (nothing to export)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flotilla import cli


def _source(tmp_path: Path) -> Path:
    root = tmp_path / "store" / "fleet" / "2026-12-07"
    root.mkdir(parents=True)
    rows = [
        {"v": 1, "id": str(i), "time": f"2026-12-07T10:00:{i:02d}+00:00", "fleet": "fleet", "task": "math",
         "messages": [{"role": "user", "content": f"{i} + {i}?"}], "answer": f"#### {2 * i}"}
        for i in range(40)
    ]  # fmt: skip
    rows.append(dict(rows[0], id="dup"))  # a retried request
    (root / "r-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"cut')
    return tmp_path / "store"


def test_export_writes_train_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = _source(tmp_path), tmp_path / "out"
    argv = ["traces", "export", "--source", str(source), "--task", "math", "--format", "sharegpt"]
    assert cli.main([*argv, "--eval-fraction", "0.25", "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["duplicates"] == 1 and summary["unreadable"] == 1
    train = (out / "train.jsonl").read_text().splitlines()
    held = (out / "eval.jsonl").read_text().splitlines()
    assert len(train) + len(held) == 40 and 3 <= len(held) <= 20
    assert json.loads(train[0])["conversations"][-1]["from"] == "gpt"
    again = tmp_path / "again"
    assert cli.main([*argv, "--eval-fraction", "0.25", "-o", str(again)]) == 0
    assert (again / "eval.jsonl").read_text() == (out / "eval.jsonl").read_text()  # deterministic


@pytest.mark.parametrize(
    ("extra", "code", "says"),
    [
        (["--eval-fraction", "1.5"], 2, "--eval-fraction must be"),
        (["--since", "yesterday-ish"], 2, "neither a duration"),
        (["--task", "poetry"], 1, "no traces of task 'poetry'"),
    ],
)
def test_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], code: int, says: str
) -> None:
    source = _source(tmp_path)
    argv = ["traces", "export", "--source", str(source), "--task", "math", "--format", "openai-chat"]
    assert cli.main([*argv, *extra, "-o", str(tmp_path / "out")]) == code
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_source_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["traces", "export", "--task", "math", "--format", "openai-chat", "-o", str(tmp_path / "o")]
    assert cli.main([*base, "--source", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert cli.main([*base, "--source", "gs://bucket/x"]) == 2
    assert "s3://BUCKET/PREFIX" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # argparse: an unknown format
        cli.main([*base, "--source", str(tmp_path), "--format", "alpaca"])
    assert exited.value.code == 2
