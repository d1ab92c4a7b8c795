"""``flotilla classifier train``: a user's labelled prompts become a classifier the router can load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flotilla import errors
from flotilla.api.routerconfig import RouterConfig
from flotilla.router import classifying
from flotilla.router.classifying import heads, training

LEGAL = [
    "Is this non-compete clause enforceable in California?",
    "What does force majeure mean in a supply contract?",
    "Can my landlord keep the deposit for normal wear and tear?",
    "Review this NDA paragraph for one-sided terms.",
    "Do I need a lawyer to register a trademark?",
    "What is the statute of limitations for breach of contract?",
    "Est-ce que cette clause de confidentialité est valable ?",
    "Ist eine mündliche Kündigung des Mietvertrags wirksam?",
]
RECIPES = [
    "How long should I roast a whole chicken?",
    "Give me a vegetarian lasagna recipe.",
    "What can I cook with eggs, spinach and feta?",
    "How do I make sourdough starter from scratch?",
    "Best way to keep basil fresh?",
    "Quick weeknight pasta ideas please",
    "Comment réussir une pâte à crêpes sans grumeaux ?",
    "Wie lange muss ein Rinderbraten ruhen?",
]
GENERAL = [
    "What is the capital of Australia?",
    "Tell me a fun fact about octopuses.",
    "How far is the Moon from Earth?",
    "Who painted the Mona Lisa?",
    "Recommend a podcast about history.",
    "What time zone is Tokyo in?",
    "Quelle est la plus haute montagne d'Europe ?",
    "Was ist die Hauptstadt von Kanada?",
]


def write_rows(path: Path) -> Path:
    rows = [
        {"prompt": p, "task": t}
        for t, ps in (("legal", LEGAL), ("recipes", RECIPES), ("general", GENERAL))
        for p in ps
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def flotilla(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flotilla.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_round_trip(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "labelled.jsonl")
    done = flotilla("classifier", "train", "--data", str(data), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    asset = tmp_path / "out" / "classifier.npz"
    meta = json.loads((tmp_path / "out" / "classifier.json").read_text())
    assert meta["tasks"] == ["general", "legal", "recipes"]
    assert meta["sha256"] in done.stdout and meta["data_sha256"] == training.data_sha256(
        training.read_rows(data)
    )
    head = heads.load(asset)
    config = RouterConfig.model_validate(
        {"defaultTask": "chat", "tasks": [{"name": "legal"}, {"name": "recipes"}, {"name": "chat"}]}
    )
    heads.check_covers(head, [t.name for t in config.tasks], config.default_task)
    classifier = classifying.build_classifier(config, head=head)
    result = classifier.classify([{"role": "user", "content": "Is a verbal agreement legally binding?"}])
    assert (result.task, result.reason) == ("legal", "classifier")
    assert classifier.classify([{"role": "user", "content": "How do I caramelise onions?"}]).task == "recipes"
    # the CLI classifies with it too
    prompts = json.dumps({"prompt": "Can I break my lease early without a penalty?"}) + "\n"
    out = flotilla(
        "classify", "--config", str(_config_file(tmp_path)), "--classifier", str(asset), stdin=prompts
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["task"] == "legal"


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "router.json"
    path.write_text(
        json.dumps(
            {"defaultTask": "chat", "tasks": [{"name": "legal"}, {"name": "recipes"}, {"name": "chat"}]}
        )
    )
    return path


def test_training_is_deterministic(tmp_path: Path) -> None:
    from flotilla.router.classifying import embedding

    rows = training.read_rows(write_rows(tmp_path / "labelled.jsonl"))
    first = training.train(rows, embedding.load()).to_bytes()
    assert training.train(rows, embedding.load()).to_bytes() == first


def test_a_head_that_does_not_cover_the_fleet_is_refused(tmp_path: Path) -> None:
    rows = training.read_rows(write_rows(tmp_path / "labelled.jsonl"))
    from flotilla.router.classifying import embedding

    head = training.train(rows, embedding.load())
    with pytest.raises(errors.ConfigError, match="do not cover the fleet's task\\(s\\) code"):
        heads.check_covers(head, ["legal", "code", "chat"], "chat")
    with pytest.raises(errors.ConfigError, match="not a valid classifier"):
        heads.from_bytes(b"PK\x03\x04 not really a zip", "test")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "a", "task": "x"}\nnot json\n', "labelled.jsonl:2: not valid JSON"),
        ('{"prompt": "", "task": "x"}\n', 'labelled.jsonl:1: needs a non-empty "prompt"'),
        ('{"prompt": "a"}\n', 'labelled.jsonl:1: needs a "task" name'),
        ('{"prompt": "a", "task": "x"}\n' * 3, "at least two tasks"),
        ('{"prompt": "a", "task": "x"}\n{"prompt": "b", "task": "y"}\n', "fewer than 5 rows"),
    ],
)
def test_bad_data_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    data = tmp_path / "labelled.jsonl"
    data.write_text(content)
    done = flotilla("classifier", "train", "--data", str(data), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "classifier.npz").exists()


def test_offsets_shift_a_task(tmp_path: Path) -> None:
    from flotilla.router.classifying import embedding

    rows = training.read_rows(write_rows(tmp_path / "labelled.jsonl"))
    plain = training.train(rows, embedding.load(), prefix=0)
    shifted = training.train(rows, embedding.load(), prefix=0, offsets={"legal": 2.0})
    assert shifted.meta["offsets"] == {"legal": 2.0} and "offsets" not in plain.meta
    assert shifted.bias - plain.bias == pytest.approx([0.0, 2.0, 0.0], abs=1e-5)
    with pytest.raises(errors.UsageError, match="offset for task\\(s\\) poetry not in the data"):
        training.train(rows, embedding.load(), prefix=0, offsets={"poetry": 1.0})


@pytest.mark.parametrize("value", ["legal", "legal=much", "=1", "legal=99"])
def test_a_bad_offset_is_a_usage_error(tmp_path: Path, value: str) -> None:
    data = write_rows(tmp_path / "labelled.jsonl")
    done = flotilla(
        "classifier", "train", "--data", str(data), "--out", str(tmp_path / "o"), "--offset", value
    )
    assert done.returncode == 2
    assert "--offset" in done.stderr and "Traceback" not in done.stderr
