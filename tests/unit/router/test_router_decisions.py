"""The sampled decision log: off by default, hashes prompts, logs text only when asked."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from flotilla.api.routerconfig import ClassifierSettings
from flotilla.router import decisions

MESSAGES = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "Écris un poème"}]
PROBS = (("writing", 0.9), ("chat", 0.1))


def test_off_by_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flotilla.router.decisions"):
        assert not decisions.record(ClassifierSettings(), "writing", 0.9, "classifier", PROBS, MESSAGES)
    assert not caplog.records


def test_sampled_entries_hash_the_prompt(caplog: pytest.LogCaptureFixture) -> None:
    settings = ClassifierSettings(log_sample=0.5)
    with caplog.at_level(logging.INFO, logger="flotilla.router.decisions"):
        assert not decisions.record(settings, "writing", 0.9, "classifier", PROBS, MESSAGES, draw=lambda: 0.7)
        assert decisions.record(settings, "writing", 0.9, "classifier", PROBS, MESSAGES, draw=lambda: 0.2)
    (record,) = caplog.records
    entry = json.loads(record.getMessage())
    assert entry == {
        "event": "classified",
        "prompt_sha256": hashlib.sha256("Écris un poème".encode()).hexdigest(),
        "task": "writing",
        "score": 0.9,
        "reason": "classifier",
        "probabilities": {"writing": 0.9, "chat": 0.1},
    }


def test_prompt_text_only_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    settings = ClassifierSettings(log_sample=1.0, log_prompts=True)
    with caplog.at_level(logging.INFO, logger="flotilla.router.decisions"):
        decisions.record(settings, "writing", 0.9, "classifier", PROBS, MESSAGES)
    assert json.loads(caplog.records[0].getMessage())["prompt"] == "Écris un poème"
