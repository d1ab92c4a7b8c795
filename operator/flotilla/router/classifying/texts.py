"""Which text of a chat request the classifier looks at: the last user turn and a few earlier user turns.

OpenAI chat messages carry ``content`` as a string or as a list of parts (``{"type": "text", "text": …}``,
images, audio); only text parts count. System prompts and assistant turns are ignored: they describe the
deployment or repeat the model, not what the user is asking for now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_TURN_CHARS = 4000
"""Each turn is cut to this many characters (its start and end kept): a long pasted document must not make
classification slow, and its opening and closing lines say more about the ask than its middle."""


def content_text(content: object) -> str:
    """The text of one message's ``content``: a string, or the joined text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def _clip(text: str) -> str:
    if len(text) > MAX_TURN_CHARS:
        half = MAX_TURN_CHARS // 2
        text = text[:half] + "\n" + text[-half:]
    if not text.isascii():
        # JSON may carry lone surrogates ("\ud800"; Python's parser accepts them, and CESU-8 bytes too).
        # They cannot be encoded as UTF-8, and the tokenizer raises on them: replace them with U+FFFD.
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def user_turns(messages: Sequence[Mapping[str, Any]], history_turns: int) -> list[str]:
    """The last user turn first, then up to ``history_turns`` earlier user turns, newest first.

    Empty turns are skipped. When no message has the ``user`` role (a bare completion prompt wrapped by the
    data plane always has one), the last message with text stands in.
    """
    turns: list[str] = []
    messages = [m for m in messages if isinstance(m, Mapping)]  # tolerate junk: classification never raises
    for message in reversed(messages):
        if message.get("role", "user") != "user":
            continue
        text = content_text(message.get("content")).strip()
        if text:
            turns.append(_clip(text))
            if len(turns) > history_turns:
                break
    if not turns:
        for message in reversed(messages):
            text = content_text(message.get("content")).strip()
            if text:
                return [_clip(text)]
    return turns
