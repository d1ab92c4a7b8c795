"""The pure export: selection, de-duplication (earliest kept), a deterministic split and both formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flotilla.capturing import exporting

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _record(
    prompt: str, answer: str, task: str = "math", hours_ago: float = 1, **extra: Any
) -> dict[str, Any]:
    when = (NOW - timedelta(hours=hours_ago)).isoformat()
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}]
    return {"v": 1, "id": f"{prompt}-{hours_ago}", "time": when, "fleet": "f", "task": task,
            "messages": messages, "answer": answer, **extra}  # fmt: skip


def _blob(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_select_dedupe_and_formats() -> None:
    counts = exporting.Counts()
    blobs = [
        _blob(_record("2+2", "4", hours_ago=5), _record("2+2", "4", hours_ago=1), _record("3+3", "6")),
        _blob(_record("hi", "hello", task="chat")) + b'{"cut": tr',
        _blob(_record("old", "x", hours_ago=24 * 30), _record("empty", "  ")),
    ]
    found = list(exporting.records(blobs, counts))
    assert counts.read == 7 and counts.unreadable == 1 and len(found) == 6
    since = exporting.parse_since("7d", NOW)
    train, _ = exporting.build(found, "math", "openai-chat", 0.0, counts, since=since)
    assert counts.selected == 3 and counts.duplicates == 1 and (counts.train, counts.eval) == (2, 0)
    assert train[0]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "2+2"},
        {"role": "assistant", "content": "4"},
    ]
    share, _ = exporting.build(found, "math", "sharegpt", 0.0, exporting.Counts(), since=since)
    assert share[0]["conversations"] == [
        {"from": "system", "value": "be brief"},
        {"from": "human", "value": "2+2"},
        {"from": "gpt", "value": "4"},
    ]


def test_split_is_deterministic_and_near_the_fraction() -> None:
    found = [_record(f"q{i}", f"a{i}") for i in range(2000)]
    train, held = exporting.build(found, "math", "openai-chat", 0.1, exporting.Counts())
    assert 150 <= len(held) <= 250 and len(train) + len(held) == 2000
    _, again_held = exporting.build(list(reversed(found)), "math", "openai-chat", 0.1, exporting.Counts())
    key = lambda row: row["messages"][1]["content"]  # noqa: E731
    assert sorted(map(key, held)) == sorted(map(key, again_held))
    # more traces later do not move the old ones between splits
    _, more_held = exporting.build(
        [*found, *[_record(f"n{i}", "x") for i in range(500)]], "math", "openai-chat", 0.1, exporting.Counts()
    )
    assert set(map(key, held)) <= set(map(key, more_held))


def test_since() -> None:
    assert exporting.parse_since("12h", NOW) == NOW - timedelta(hours=12)
    assert exporting.parse_since("2026-12-01", NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        exporting.parse_since("last tuesday", NOW)
