"""Remove personal data and secrets from trace text before it leaves the router (pure, no I/O).

Built-ins replace emails, phone numbers, card numbers (only digit runs that pass the Luhn check, so order
numbers and arithmetic survive), and API keys and tokens: OpenAI-style ``sk-...``, ``Bearer ...``, AWS
access key ids (``AKIA``/``ASIA``...), JWTs, GitHub/Slack/Google tokens, ``password=...``-style assignments
and any long high-entropy run of key characters. The fleet's own regexes (``spec.distillation.redact``) are
applied first. Each match becomes a placeholder that names what was removed (``[EMAIL]``, ``[SECRET]``...),
so a trace still reads naturally and the placeholders themselves never match a pattern again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence

Replacement = Callable[[re.Match[str]], str]

_SECRET_WORDS = r"(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|pwd|access[_-]?key|private[_-]?key)"

# Order matters: specific token shapes before the generic ones that would also match them.
_TOKENS = (
    r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",  # JWT (header.payload.signature)
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}",  # OpenAI / Anthropic keys
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\bAIza[A-Za-z0-9_-]{35}",  # Google API keys
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
)
_TOKEN = re.compile("|".join(f"(?:{t})" for t in _TOKENS))
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)(\s+)([A-Za-z0-9._~+/=-]{8,})")
_CREDENTIAL_MARK = re.compile(r"[0-9._~+/=]|.[A-Z]")
"""What a credential after ``Bearer``/``Basic``/``Token`` has and a word does not: a digit, a symbol or a
capital inside it (``Basic dXNlcjpwYXNz``, not ``basic understanding`` or ``token limits``)."""
_ASSIGNMENT = re.compile(rf"(?i)\b({_SECRET_WORDS}[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{{4,}}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13-19 digits in one run, or in groups of 4-6 digits split by single spaces or dashes (how cards are printed
# and typed: 4-4-4-4, 4-6-5); the card inside a run is found by _card_text. Lists of short numbers never
# match.
_CARD = re.compile(r"(?<![\d-])(?:\d{13,19}|\d{4,6}(?:[ -]\d{4,6}){2,5})(?![\d-])")
# +CC followed by 7-14 digits in groups; or (NNN) NNN-NNNN / NNN-NNN-NNNN / NNN.NNN.NNNN (North America).
_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?!\w)"
    r"|(?<!\w)\(\d{3}\)\s?\d{3}[ .-]\d{4}(?!\w)"
    r"|(?<![\w.-])\d{3}[.-]\d{3}[.-]\d{4}(?![\w-])"
)
# A run of key characters long enough to be a credential; kept only if it looks random (see _is_random).
_GENERIC = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{24,}(?![A-Za-z0-9+/_=-])")
_MIN_ENTROPY_BITS = 3.5  # per character; English words and hex hashes of text stay below or are excluded


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def entropy_bits(text: str) -> float:
    """Shannon entropy per character of ``text``."""
    counts: dict[str, int] = {}
    for char in text:
        counts[char] = counts.get(char, 0) + 1
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


def _is_random(token: str) -> bool:
    """Mixed letters and digits with high entropy: a key, not a word, a number or a path."""
    has_digit = any(c.isdigit() for c in token)
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    return has_digit and has_lower and has_upper and entropy_bits(token) >= _MIN_ENTROPY_BITS


def _card(match: re.Match[str]) -> str:
    return _card_text(match.group())


def _card_text(text: str) -> str:
    """Replace the longest run of whole digit groups in ``text`` that is a Luhn-valid card number (13-19
    digits), then look again left and right of it: a card typed next to another number is still found."""
    groups = list(re.finditer(r"\d+", text))
    best: tuple[int, int] | None = None  # (digits, -start index) of the best window so far
    span = (0, 0)
    for start in range(len(groups)):
        digits = 0
        for end in range(start, len(groups)):
            digits += len(groups[end].group())
            if digits > 19:
                break
            if digits >= 13 and (best is None or digits > best[0]):
                number = "".join(g.group() for g in groups[start : end + 1])
                if luhn_valid(number):
                    best = (digits, -start)
                    span = (groups[start].start(), groups[end].end())
    if best is None:
        return text
    begin, end_at = span
    return _card_text(text[:begin]) + "[CARD]" + _card_text(text[end_at:])


def _scheme(match: re.Match[str]) -> str:
    if _CREDENTIAL_MARK.search(match.group(3)) is None:
        return match.group()
    return f"{match.group(1)}{match.group(2)}[SECRET]"


def _generic(match: re.Match[str]) -> str:
    return "[SECRET]" if _is_random(match.group()) else match.group()


Gate = Callable[[str, str, int], bool]
"""(text, case-folded text, its digit count) -> whether a built-in pattern can match at all. Each gate is a
necessary condition of its pattern, checked with C string methods or one short regex, because a failed scan
costs 7-40 ns a character in ``re`` and redaction runs on the router's core: an ordinary 900-character
prompt went from ~200 to ~30 µs (docs/distillation.md, Costs). ``test_a_gate_never_hides_a_match``
checks each gate against its pattern."""
_DASHED_STARTS = ("sk-", "xox", "-----BEGIN")
"""Starts of the ``_TOKEN`` alternatives that have a ``-``; the others need a ``J`` (a JWT's ``eyJ``), an
``A`` (Google's ``AIza``, AWS's key ids) or a ``_`` (GitHub's ``gh?_``). Looking for a rare character
first and a start only then is a few ``memchr`` calls for most prompts: 20-50 times faster than scanning
the text with ``_TOKEN`` or an alternation of its starts, whose first characters (e, s, x...) are common."""
_A_STARTS = ("AIza", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA")
_GITHUB_PREFIX = re.compile(r"gh[pousr]_")
_SCHEME_WORDS = ("bearer", "basic", "token")
_ASSIGNED_WORD = re.compile(r"(?:key|secret|token|passw(?:or)?d|pwd)[\"']?\s*[:=]")
"""The end of every ``_ASSIGNMENT`` key word and its separator (each word of ``_SECRET_WORDS`` ends in one
of these), searched in the case-folded text: without ``(?i)`` the scan is 7 times faster."""
_ASSIGNED_WORDS = ("key", "secret", "token", "passw", "pwd")
_DIGIT = re.compile(r"\d")
_ASCII_DIGITS = b"0123456789"
CARD_DIGITS = 13  # the fewest digits of a card number (_CARD)
PHONE_DIGITS = 10  # the fewest digits of a phone number without a country code (_PHONE)
INTERNATIONAL_DIGITS = 3  # ... and with one: +C and two more groups of one digit


_KEY_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_=-"
_KEY_RUN = bytes.maketrans(_KEY_BYTES, b"k" * len(_KEY_BYTES))
"""Maps each byte ``_GENERIC`` counts as a key character to ``k`` (and leaves every other one alone, none of
them being a ``k`` afterwards: ``k`` itself is a key character)."""
_LONG_KEY = b"k" * 24


def digit_count(text: str) -> int:
    """How many characters of ``text`` are digits (``\\d``: any script's), counted in C."""
    if text.isascii():  # one C pass deleting the digits; other scripts have digits of their own
        encoded = text.encode("ascii")
        return len(encoded) - len(encoded.translate(None, _ASCII_DIGITS))
    return len(_DIGIT.findall(text))


def has_long_key_run(text: str) -> bool:
    """Whether ``text`` has 24 key characters in a row (what ``_GENERIC`` needs), in two C passes: every
    key character is ASCII, so in UTF-8 no other character's bytes can extend a run."""
    return _LONG_KEY in text.encode("utf-8", "surrogatepass").translate(_KEY_RUN)


def _maybe_token(text: str, folded: str, digits: int) -> bool:
    return (
        ("J" in text and "eyJ" in text)
        or ("-" in text and any(start in text for start in _DASHED_STARTS))
        or ("A" in text and any(start in text for start in _A_STARTS))
        or ("_" in text and _GITHUB_PREFIX.search(text) is not None)
    )


def _maybe_scheme(text: str, folded: str, digits: int) -> bool:
    # (?i) also lets the dotless i and the dotted capital I (folded to i + U+0307) stand for "i"
    if any(word in folded for word in _SCHEME_WORDS):
        return True
    return not folded.isascii() and ("\u0131" in folded or "\u0307" in folded)


def _maybe_assignment(text: str, folded: str, digits: int) -> bool:
    return (
        ("=" in text or ":" in text)
        and any(word in folded for word in _ASSIGNED_WORDS)  # substring scans in C before the regex
        and _ASSIGNED_WORD.search(folded) is not None
    )


def _maybe_email(text: str, folded: str, digits: int) -> bool:
    return "@" in text


def _maybe_card(text: str, folded: str, digits: int) -> bool:
    return digits >= CARD_DIGITS


def _maybe_phone(text: str, folded: str, digits: int) -> bool:
    return digits >= PHONE_DIGITS or ("+" in text and digits >= INTERNATIONAL_DIGITS)


_MARK = re.compile(r"[JA_=:@+-]")
"""Every character some digit-free built-in needs: a token's ``J``, ``A``, ``_`` or ``-``, an assignment's
``=`` or ``:``, an email's ``@``, a phone's ``+``."""


def may_hold_any(text: str, folded: str, digits: int) -> bool:
    """Whether any built-in can match: one check in C for the short, plain texts most answers are, instead
    of seven gates (measured in-process with ``bench/capture_trace.py``). Without a digit no card, phone or
    generic key can match, and every other built-in needs a mark or a scheme word."""
    return bool(digits) or _MARK.search(text) is not None or _maybe_scheme(text, folded, digits)


def _maybe_key(text: str, folded: str, digits: int) -> bool:
    """A run that ``_is_random`` keeps is 24 key characters long and has a digit and an upper-case letter
    (which case folding changes)."""
    return digits > 0 and len(text) >= 24 and text != folded and has_long_key_run(text)


class Redactor:
    """Applies the fleet's patterns, then the built-ins, to one string at a time."""

    __slots__ = ("_builtin_only", "_rules")

    def __init__(self, extra: Iterable[str] = ()) -> None:
        rules: list[tuple[re.Pattern[str], str | Replacement, Gate | None]] = [
            (re.compile(p), "[REDACTED]", None) for p in extra
        ]
        rules += [
            (_TOKEN, "[SECRET]", _maybe_token),
            (_BEARER, _scheme, _maybe_scheme),
            (_ASSIGNMENT, r"\1[SECRET]", _maybe_assignment),
            (_EMAIL, "[EMAIL]", _maybe_email),
            (_CARD, _card, _maybe_card),
            (_PHONE, "[PHONE]", _maybe_phone),
            (_GENERIC, _generic, _maybe_key),
        ]
        self._rules: Sequence[tuple[re.Pattern[str], str | Replacement, Gate | None]] = tuple(rules)
        self._builtin_only = all(gate is not None for _, _, gate in rules)
        """No fleet patterns (which have no gate): ``may_hold_any`` can speak for all of the rules."""

    def text(self, text: str) -> str:
        """``text`` with every match replaced."""
        folded = text.casefold()  # not lower(): long s and the Kelvin sign match s and k in (?i)
        digits = digit_count(text)
        if self._builtin_only and not may_hold_any(text, folded, digits):
            return text
        for pattern, replacement, gate in self._rules:
            if gate is None or gate(text, folded, digits):
                replaced = pattern.sub(replacement, text)
                if replaced is not text:
                    text, folded, digits = replaced, replaced.casefold(), digit_count(replaced)
        return text

    def content(self, content: object) -> object:
        """A message ``content``: a string, or OpenAI content parts (their ``text`` redacted, images
        replaced by a placeholder: a data URL may carry anything)."""
        if isinstance(content, str):
            return self.text(content)
        if isinstance(content, list):
            parts: list[object] = []
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    parts.append({**part, "text": self.text(part["text"])})
                elif isinstance(part, dict) and part.get("type") == "text":
                    parts.append(part)
                else:
                    parts.append({"type": "text", "text": "[NON-TEXT CONTENT]"})
            return parts
        return None if content is None else self.text(str(content))
