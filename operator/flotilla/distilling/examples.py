"""Fine-tuning examples: openai-chat JSONL (``flotilla traces export``) -> validated (prompt, answer) pairs.

Pure (no model, no torch): the CLI checks a dataset here before it loads anything heavy, so a bad file fails
in a second with the line number, not after a minute of model loading. The prompt is rendered with the same
Gemma turn template llama.cpp applies when serving (``llm_chat_apply_template``, ``gemma``): a student is
trained on exactly the text it will see.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flotilla import errors

TEMPLATES = ("gemma",)
"""Chat templates a fine-tune can render (the Gemma 3 270M GGUF carries none: the fleet serves it with
llama.cpp's built-in ``gemma`` template)."""


@dataclass(frozen=True)
class Example:
    """One training pair: the conversation up to the answer, and the answer the teacher gave."""

    messages: tuple[tuple[str, str], ...]
    answer: str


def _content(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts
        return "\n".join(str(p.get("text", "")) for p in value if isinstance(p, Mapping))
    return None


def parse_line(line: str, where: str) -> Example:
    """An example from one JSONL line; UsageError naming ``where`` (file:line) and what is wrong."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise errors.UsageError(f"{where}: not JSON ({exc.msg})") from None
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or len(messages) < 2:
        raise errors.UsageError(f"{where}: expected an openai-chat row {{'messages': [..., assistant]}}")
    turns: list[tuple[str, str]] = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        content = _content(message.get("content")) if isinstance(message, dict) else None
        if role not in ("system", "user", "assistant") or content is None:
            raise errors.UsageError(
                f"{where}: every message needs a role (system/user/assistant) and content"
            )
        turns.append((role, content))
    if turns[-1][0] != "assistant" or not turns[-1][1].strip():
        raise errors.UsageError(f"{where}: the last message must be the assistant's non-empty answer")
    if not any(role == "user" for role, _ in turns[:-1]):
        raise errors.UsageError(f"{where}: no user message before the answer")
    return Example(messages=tuple(turns[:-1]), answer=turns[-1][1])


def load(path: Path) -> tuple[list[Example], str]:
    """The examples in an openai-chat JSONL file and the file's sha256; UsageError when it is unusable."""
    if not path.is_file():
        raise errors.UsageError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.UsageError(f"{path}: not UTF-8 text") from None
    found = [
        parse_line(line, f"{path}:{number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not found:
        raise errors.UsageError(f"{path}: no examples (an empty file)")
    return found, hashlib.sha256(raw).hexdigest()


def render_prompt(messages: Sequence[tuple[str, str]], template: str = "gemma") -> str:
    """The prompt text up to where the model's answer starts, as llama.cpp's ``gemma`` template renders it
    (system text merged into the next user turn, contents trimmed); the BOS token is added by tokenising."""
    if template not in TEMPLATES:
        raise errors.UsageError(f"unknown chat template {template!r} (known: {', '.join(TEMPLATES)})")
    out, system = [], ""
    for role, content in messages:
        if role == "system":
            system += content.strip()
            continue
        turn = "model" if role == "assistant" else role
        out.append(f"<start_of_turn>{turn}\n")
        if system and turn != "model":
            out.append(system + "\n\n")
            system = ""
        out.append(content.strip() + "<end_of_turn>\n")
    out.append("<start_of_turn>model\n")
    return "".join(out)


def render_answer(answer: str, template: str = "gemma") -> str:
    """The answer as the model should produce it, end-of-turn marker included (so it learns to stop)."""
    if template not in TEMPLATES:
        raise errors.UsageError(f"unknown chat template {template!r} (known: {', '.join(TEMPLATES)})")
    return answer.strip() + "<end_of_turn>\n"
