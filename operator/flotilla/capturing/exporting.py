"""Captured traces -> fine-tuning JSONL (pure: no I/O; ``capturing.commands`` reads and writes).

De-duplication: two traces with the same messages and answer are one example (the earliest kept), so a
prompt a client retried or a popular question does not weigh more in training. The train/eval split is a
function of that same content hash, so it is deterministic (the same trace lands in the same split on every
export, also as more traces arrive) and a duplicate can never sit on both sides.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Format = Literal["openai-chat", "sharegpt"]
FORMATS: tuple[Format, ...] = ("openai-chat", "sharegpt")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt", "tool": "tool"}


@dataclass
class Counts:
    read: int = 0
    unreadable: int = 0
    selected: int = 0
    duplicates: int = 0
    train: int = 0
    eval: int = 0


def parse_since(text: str, now: datetime) -> datetime:
    """``7d``/``12h``/``30m`` before ``now``, or an ISO 8601 date or time (UTC when no zone); ValueError."""
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r} is neither a duration (7d, 12h, 30m) nor an ISO date") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def records(blobs: Iterable[bytes], counts: Counts) -> Iterator[dict[str, Any]]:
    """The trace records in JSONL ``blobs``; lines that are not a trace (a cut last line) are counted."""
    for blob in blobs:
        for line in blob.splitlines():
            if not line.strip():
                continue
            counts.read += 1
            try:
                record = json.loads(line)
            except ValueError:
                counts.unreadable += 1
                continue
            if isinstance(record, dict) and isinstance(record.get("messages"), list) and "answer" in record:
                yield record
            else:
                counts.unreadable += 1


def _time(record: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(record.get("time")))
    except ValueError:
        return None


def content_key(record: Mapping[str, Any]) -> str:
    """sha256 of the messages and the answer: the identity of a training example."""
    canonical = json.dumps([record["messages"], record["answer"]], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def in_eval(key: str, fraction: float) -> bool:
    """Whether the example with content ``key`` belongs to the eval split (deterministic)."""
    return int(key[:15], 16) / 16**15 < fraction


def to_openai_chat(record: Mapping[str, Any]) -> dict[str, Any]:
    messages = [
        {"role": m.get("role", "user"), "content": _text(m.get("content"))} for m in record["messages"]
    ]
    return {"messages": [*messages, {"role": "assistant", "content": record["answer"]}]}


def to_sharegpt(record: Mapping[str, Any]) -> dict[str, Any]:
    turns = [
        {"from": _SHAREGPT_ROLES.get(str(m.get("role")), "human"), "value": _text(m.get("content"))}
        for m in record["messages"]
    ]
    return {"conversations": [*turns, {"from": "gpt", "value": record["answer"]}]}


def _text(content: object) -> str:
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def build(
    found: Iterable[dict[str, Any]],
    task: str,
    fmt: Format,
    eval_fraction: float,
    counts: Counts,
    fleet: str | None = None,
    since: datetime | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, eval) examples of ``task``: selected, de-duplicated (earliest kept), split, formatted."""
    convert = to_openai_chat if fmt == "openai-chat" else to_sharegpt
    chosen = []
    for record in found:
        if record.get("task") != task or (fleet is not None and record.get("fleet") != fleet):
            continue
        when = _time(record)
        if since is not None and (when is None or when < since):
            continue
        if not str(record.get("answer", "")).strip():
            continue  # an empty answer teaches nothing
        chosen.append((when or datetime.max.replace(tzinfo=UTC), record))
    counts.selected = len(chosen)
    chosen.sort(key=lambda pair: (pair[0], str(pair[1].get("id", ""))))
    seen: set[str] = set()
    train: list[dict[str, Any]] = []
    held_out: list[dict[str, Any]] = []
    for _, record in chosen:
        key = content_key(record)
        if key in seen:
            counts.duplicates += 1
            continue
        seen.add(key)
        (held_out if in_eval(key, eval_fraction) else train).append(convert(record))
    counts.train, counts.eval = len(train), len(held_out)
    return train, held_out
