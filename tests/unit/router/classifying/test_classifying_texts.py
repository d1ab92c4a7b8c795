"""Which turns of a chat request the classifier reads."""

from __future__ import annotations

from flotilla.router.classifying import texts


def test_string_and_part_lists() -> None:
    assert texts.content_text("hello") == "hello"
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": "b"},
    ]
    assert texts.content_text(parts) == "a\nb"
    assert texts.content_text(None) == ""
    assert texts.content_text(42) == ""


def test_last_user_turn_first_then_history_window() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant that writes Python."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "text", "text": "third"}]},
    ]
    assert texts.user_turns(messages, 0) == ["third"]
    assert texts.user_turns(messages, 1) == ["third", "second"]
    assert texts.user_turns(messages, 5) == ["third", "second", "first"]


def test_without_user_turns_the_last_text_stands_in() -> None:
    assert texts.user_turns([{"role": "system", "content": "only a system prompt"}], 2) == [
        "only a system prompt"
    ]
    assert texts.user_turns([], 2) == []
    assert texts.user_turns([{"role": "user", "content": "   "}], 2) == []


def test_long_turns_keep_start_and_end() -> None:
    text = "START " + "x" * 20_000 + " END"
    (clipped,) = texts.user_turns([{"role": "user", "content": text}], 0)
    assert len(clipped) <= texts.MAX_TURN_CHARS + 1
    assert clipped.startswith("START") and clipped.endswith("END")


def test_lone_surrogates_become_replacement_characters() -> None:
    """A lone surrogate (valid JSON escape, not encodable as UTF-8) used to make the tokenizer raise."""
    turns = texts.user_turns([{"role": "user", "content": "a\ud800b \udfff"}], 0)
    assert turns == ["a\ufffd\ufffd\ufffdb \ufffd\ufffd\ufffd"]
    assert turns[0].encode("utf-8")
    assert texts.user_turns([{"role": "user", "content": "caf\u00e9 \U0001f600"}], 0) == [
        "caf\u00e9 \U0001f600"
    ]
