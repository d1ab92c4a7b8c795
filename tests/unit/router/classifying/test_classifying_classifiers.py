"""The classifier: presets, a task's own match, threshold and default, history window, reasons."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla import errors
from flotilla.api.routerconfig import RouterConfig
from flotilla.router import classifying, presets


def config(tasks: list[dict[str, Any]], default: str = "chat", **classifier: Any) -> RouterConfig:
    return RouterConfig.model_validate({"defaultTask": default, "tasks": tasks, "classifier": classifier})


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def builtin() -> classifying.Classifier:
    return classifying.build_classifier(classifying.preset_config(["code", "math", "writing"], "chat"))


def test_all_presets_are_usable_by_name() -> None:
    assert set(presets.PRESETS) == {
        "code",
        "math",
        "writing",
        "summarization",
        "extraction",
        "translation",
        "chat",
    }
    tasks = [{"name": name} for name in presets.PRESETS]
    classifier = classifying.build_classifier(config(tasks))
    for preset in presets.PRESETS.values():
        assert preset.examples and preset.rules, preset.name
    cases = {
        "Summarize the following article in three sentences: the council met on Tuesday.": "summarization",
        "Extract all the email addresses from this text: bob@example.com, eve@example.org": "extraction",
        "Translate 'where is the train station' into German.": "translation",
        "Write a Python function that checks whether a number is a palindrome.": "code",
        "Solve for x: 4x - 7 = 21": "math",
        "Write a poem about a lighthouse keeper.": "writing",
        "Hi there!": "chat",
    }
    for prompt, task in cases.items():
        assert classifier.classify(user(prompt)).task == task, prompt


def test_builtin_presets_with_reasons(builtin: classifying.Classifier) -> None:
    code = builtin.classify(user("```python\nprint(x\n```\nwhy does this fail?"))
    assert (code.task, code.reason) == ("code", "classifier")
    assert 0.5 <= code.score <= 1.0
    probabilities = dict(code.probabilities)
    assert set(probabilities) == {"code", "math", "writing", "chat"}
    assert abs(sum(probabilities.values()) - 1.0) < 1e-3
    assert probabilities["code"] == max(probabilities.values())
    math = builtin.classify(user("A train leaves at 3 pm going 80 km/h. How far has it gone by 5:30 pm?"))
    assert math.task == "math"
    writing = builtin.classify(user("Compose a limerick about a cat who loves lasagna."))
    assert writing.task == "writing"
    general = builtin.classify(user("What are good places to visit in Portugal in spring?"))
    assert (general.task, general.reason) == ("chat", "default")
    assert general.score == pytest.approx(dict(general.probabilities)["chat"], abs=1e-4)


def test_multilingual_requests_route_alike(builtin: classifying.Classifier) -> None:
    poems = [
        "Write a poem about the sea",
        "Écris un poème sur la mer",
        "写一首关于大海的诗",
        "海についての詩を書いてください",
        "Напиши стихотворение о море",  # noqa: RUF001
        "바다에 관한 시를 써 줘",
    ]
    assert {builtin.classify(user(p)).task for p in poems} == {"writing"}
    assert builtin.classify(user("Combien font 17 % de 340 ?")).task == "math"


def test_fleet_keywords_override_the_head_for_a_known_task() -> None:
    tasks = [{"name": "writing", "match": {"keywords": ["zebra"]}}, {"name": "code"}, {"name": "chat"}]
    classifier = classifying.build_classifier(config(tasks))
    result = classifier.classify(user("zebra"))
    assert (result.task, result.reason) == ("writing", "keyword:zebra")
    assert classifier.classify(user("Write a SQL query that counts orders per day")).task == "code"


def test_only_configured_tasks_are_candidates() -> None:
    classifier = classifying.build_classifier(config([{"name": "math"}, {"name": "chat"}]))
    result = classifier.classify(user("Write a Python function that reverses a linked list."))
    assert result.task in {"math", "chat"}
    assert classifier.classify(user("Solve for x: 2x + 3 = 11")).task == "math"


def test_explicit_preset_and_own_match() -> None:
    classifier = classifying.build_classifier(
        config(
            [
                {"name": "coder", "preset": "code"},
                {
                    "name": "legal",
                    "match": {"keywords": ["contract", "liability"], "patterns": [r"\bGDPR\b"]},
                },
                {"name": "general"},
            ],
            default="general",
        )
    )
    assert classifier.classify(user("Fix this JavaScript: const x = [1,2,3].mapp(y => y)")).task == "coder"
    legal = classifier.classify(user("Is this contract clause enforceable?"))
    assert (legal.task, legal.reason) == ("legal", "keyword:contract")
    assert classifier.classify(user("Does GDPR apply to us?")).reason == r"pattern:\bGDPR\b"
    assert classifier.classify(user("How tall is Mont Blanc?")).task == "general"


def test_own_examples_route_by_embedding() -> None:
    examples = [
        "What's the weather like tomorrow in Berlin?",
        "Will it rain this weekend?",
        "How hot will it be on Friday?",
        "Is there a storm warning for the coast?",
    ]
    classifier = classifying.build_classifier(
        config([{"name": "weather", "match": {"examples": examples}}, {"name": "chat"}])
    )
    assert classifier.uses_embeddings
    result = classifier.classify(user("Do I need an umbrella today? Is rain in the forecast?"))
    assert (result.task, result.reason) == ("weather", "embedding")


def test_unknown_preset_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="unknown preset 'poetry'"):
        classifying.build_classifier(config([{"name": "verse", "preset": "poetry"}, {"name": "chat"}]))


def test_threshold_sends_unsure_requests_to_the_default() -> None:
    prompt = user("Write a Python function that adds two numbers.")
    tasks = [{"name": "code"}, {"name": "math"}, {"name": "chat"}]
    assert classifying.build_classifier(config(tasks, threshold=0.5)).classify(prompt).task == "code"
    strict = classifying.build_classifier(config(tasks, threshold=1.0)).classify(prompt)
    assert (strict.task, strict.reason) == ("chat", "default")
    assert 0.0 <= strict.score < 0.5  # the default's confidence: low, the code evidence was strong


def test_no_text_goes_to_the_default() -> None:
    classifier = classifying.build_classifier(config([{"name": "code"}, {"name": "chat"}]))
    assert classifier.classify([]) == classifying.Classification("chat", 1.0, "default")
    assert classifier.classify(user("")).reason == "default"


def test_history_window() -> None:
    conversation = [
        {
            "role": "user",
            "content": "Here is my Python code:\n```python\ndef f(xs):\n    return xs.sort()\n```",
        },
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "ok, and now?"},
    ]
    tasks = [{"name": "code"}, {"name": "chat"}]
    without = classifying.build_classifier(config(tasks, historyTurns=0)).classify(conversation)
    with_history = classifying.build_classifier(config(tasks, historyTurns=1)).classify(conversation)
    assert without.task == "chat"
    assert with_history.task == "code"


def test_models_are_cached_across_builds() -> None:
    from flotilla.router.classifying import embedding

    first = embedding.load()
    assert embedding.load() is first
    vector = first.embed("hello world")
    assert vector.shape == (first.dimensions,)
    assert abs(float(vector @ vector) - 1.0) < 1e-5


def test_packaged_assets_are_intact() -> None:
    """The checked-in files are the ones the build recorded (catches a truncated file or an LFS pointer),
    and the packaged head was trained on the packaged embedding."""
    import hashlib
    import json

    from flotilla.router.classifying import embedding, heads

    meta = json.loads((embedding.PACKAGED_ASSET / "meta.json").read_text())
    for name, digest in meta["files_sha256"].items():
        assert hashlib.sha256((embedding.PACKAGED_ASSET / name).read_bytes()).hexdigest() == digest, name
    head = heads.load(heads.PACKAGED_HEAD)
    head.check_compatible(embedding.load())
    assert head.classes == ("code", "general", "math", "writing")


def test_junk_messages_do_not_raise(builtin: classifying.Classifier) -> None:
    junk: list[Any] = ["not a message", {"role": "user", "content": {"unexpected": "dict"}}, {"content": 5}]
    assert builtin.classify(junk).reason == "default"


def test_a_default_without_examples_still_wins_neutral_prompts() -> None:
    tasks = [{"name": "code"}, {"name": "math"}, {"name": "writing"}, {"name": "general"}]
    classifier = classifying.build_classifier(config(tasks, default="general"))
    for prompt in ("Tell me about the French revolution.", "What causes the northern lights?"):
        assert classifier.classify(user(prompt)).task == "general", prompt


def test_a_writing_request_overrides_the_head() -> None:
    # the head reads the programming words and leans to code (0.53); the request is to translate a text
    prompt = user("请把这段产品说明翻译成英文：本产品支持Python和Java两种接口。")  # noqa: RUF001
    fleet = [{"name": "code"}, {"name": "writing"}, {"name": "chat"}]
    result = classifying.build_classifier(config(fleet)).classify(prompt)
    assert (result.task, result.reason, result.score) == ("writing", "pattern:writing-request", 0.98)
    assert dict(result.probabilities)["code"] > dict(result.probabilities)["writing"]
    without_writing = classifying.build_classifier(config([{"name": "code"}, {"name": "chat"}]))
    assert without_writing.classify(prompt).reason != "pattern:writing-request"
    strict = classifying.build_classifier(config(fleet, threshold=0.99)).classify(prompt)
    assert strict.reason != "pattern:writing-request"  # its score (0.98) is below the threshold


def test_a_loaded_head_is_column_major_and_saves_as_it_was_read() -> None:
    """The router reads scattered columns of the token and n-gram weights, so a loaded head holds them
    column-major; the file keeps its own (C) layout: loading and saving gives the same bytes, and both
    stages share one idf vector."""
    from flotilla.router.classifying import heads

    data = heads.PACKAGED_HEAD.read_bytes()
    head = heads.from_bytes(data)
    assert head.refine is not None and head.char_weights is not None
    for weights in (head.bag_weights, head.opening_weights, head.char_weights):
        assert weights.flags.f_contiguous
    assert head.refine.head.idf is head.idf
    assert head.to_bytes() == data
