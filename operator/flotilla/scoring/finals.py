"""The final answer a text commits to, normalised so two answers compare equal when they mean the same number.

Tuned for arithmetic answers (GSM8K style): "#### 42", "\\boxed{42}", "the answer is 42", else the last
number. Shared by the router's test-time compute vote, its final-answer verifier and shadow scoring.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = r"-?\$?\s?\d[\d,]*(?:\.\d+)?(?:\s?/\s?\d+)?"
_MARKED = (
    re.compile(r"####\s*(" + _NUMBER + r"|[^\n]+)"),
    re.compile(r"\\boxed\{([^{}]*)\}"),
    re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*\**\s*(" + _NUMBER + r"|[^\n.]+)", re.I),
)
_NUMBERS = re.compile(_NUMBER)
_FRACTION = re.compile(r"^(-?\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")


def normalise(answer: str) -> str:
    """A canonical form for voting: numbers without ``$``, thousands separators or trailing zeros
    ("$1,440.00" → "1440", "3/4" → "0.75"); other text lower-cased with spaces collapsed, ends trimmed."""
    text = answer.strip().strip("*").strip().rstrip(".").strip()
    compact = text.replace("$", "").replace(",", "").replace(" ", "").rstrip("%")
    fraction = _FRACTION.match(compact)
    try:
        value = Decimal(fraction.group(1)) / Decimal(fraction.group(2)) if fraction else Decimal(compact)
    except (InvalidOperation, ZeroDivisionError):
        return " ".join(text.lower().split())
    if not value.is_finite():
        return " ".join(text.lower().split())
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def final_answer(text: str) -> str | None:
    """The answer the text commits to, normalised: after "####", in ``\\boxed{}``, after "the answer is" /
    "Answer:" (the last such marker wins), else the last number; None when there is none."""
    for pattern in _MARKED:
        found = pattern.findall(text)
        if found:
            marked: str = found[-1]
            numbers = _NUMBERS.findall(marked)
            return normalise(numbers[0] if numbers else marked)
    numbers = _NUMBERS.findall(text)
    return normalise(numbers[-1]) if numbers else None
