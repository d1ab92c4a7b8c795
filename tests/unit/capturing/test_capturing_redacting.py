"""The pure redactor: every built-in secret shape is removed wherever it sits in surrounding text, ordinary
text (numbers in arithmetic, dates, words) is left alone, and redacting twice changes nothing."""

from __future__ import annotations

import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.capturing.redacting import Redactor, digit_count, entropy_bits, luhn_valid, may_hold_any

REDACTOR = Redactor([r"ACME-\d{6}"])
BUILTINS = Redactor()
EVERY_GATE = Redactor([r"(?!)"])  # a fleet pattern that never matches: the first check is off
# Filler that cannot complete a secret by itself: lowercase words and short numbers, spaces, punctuation.
WORDS = st.lists(
    st.one_of(st.text(string.ascii_lowercase, min_size=1, max_size=8), st.integers(0, 999).map(str)),
    max_size=8,
).map(" ".join)
ALNUM = string.ascii_letters + string.digits


def _luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it Luhn-valid."""
    return next(body + d for d in string.digits if luhn_valid(body + d))


def _card_number() -> st.SearchStrategy[str]:
    def grouped(digits: str) -> str:
        return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))

    contiguous = st.text(string.digits, min_size=12, max_size=18).map(_luhn_complete)
    sixteen = st.text(string.digits, min_size=15, max_size=15).map(_luhn_complete)
    return st.one_of(contiguous, sixteen.map(grouped), sixteen.map(lambda d: grouped(d).replace(" ", "-")))


SECRETS = st.one_of(
    st.emails().filter(
        lambda e: re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", e) is not None
    ),
    _card_number(),
    st.text(ALNUM, min_size=20, max_size=40).map(lambda s: "sk-" + s),
    st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    st.tuples(*[st.text(ALNUM + "_-", min_size=8, max_size=30)] * 3).map(
        lambda p: f"eyJ{p[0]}.eyJ{p[1]}.{p[2]}"
    ),
    st.text(string.digits, min_size=6, max_size=6).map(lambda d: "ACME-" + d),
    st.tuples(st.integers(200, 999), st.integers(200, 999), st.integers(1000, 9999)).map(
        lambda t: f"({t[0]}) {t[1]}-{t[2]}"
    ),
)


@settings(max_examples=400, deadline=None)
@given(before=WORDS, secret=SECRETS, after=WORDS)
def test_a_secret_never_survives(before: str, secret: str, after: str) -> None:
    text = f"{before} {secret} {after}"
    redacted = REDACTOR.text(text)
    assert secret not in redacted
    assert REDACTOR.text(redacted) == redacted  # placeholders match nothing


@settings(max_examples=200, deadline=None)
@given(WORDS)
def test_ordinary_text_is_kept(text: str) -> None:
    assert REDACTOR.text(text) == text


def test_built_ins() -> None:
    cases = {
        "mail jane.roe@example.co.uk now": "mail [EMAIL] now",
        "call +1 415 555 0100 or (415) 555-0199": "call [PHONE] or [PHONE]",
        "card 4111 1111 1111 1111 ok": "card [CARD] ok",
        "Authorization: Bearer abc.def-ghi_12345": "Authorization: Bearer [SECRET]",
        "Authorization: Basic dXNlcjpwYXNz": "Authorization: Basic [SECRET]",
        "password=hunter22, api_key: 'zzzzyyyy'": "password=[SECRET], api_key: '[SECRET]'",
        "token zQ7vK2pL9xW4mN8bR3tY6cH1jF5gD0sA end": "token [SECRET] end",
        "ghp_" + "a1B2" * 9: "[SECRET]",
        "customer ACME-123456": "customer [REDACTED]",
    }
    for text, expected in cases.items():
        assert REDACTOR.text(text) == expected, text


def test_what_is_not_a_secret_stays() -> None:
    for text in (
        "What is 1440 / 12? The answer is 120.",
        "On 2024-01-15 we sold 12345 units for $1,440.00.",
        "order 4111111111111112 (not a card: Luhn fails)",
        "sha 3f786850e387550fdab836ed7e6dc881de23001b",
        "see https://example.com/some/long/path/to/resource_name_here",
        "the identifier_with_many_words_in_snake_case stays",
        "a basic understanding of token limitations, Bearer Instruments Ltd",
    ):
        assert REDACTOR.text(text) == text


def test_luhn_and_entropy() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert entropy_bits("aaaa") == 0
    assert entropy_bits("zQ7vK2pL9xW4mN8bR3tY6cH1jF5gD0sA") > 4


def test_content_parts() -> None:
    parts = [{"type": "text", "text": "mail a@b.io"}, {"type": "image_url", "image_url": {"url": "data:x"}}]
    assert REDACTOR.content(parts) == [
        {"type": "text", "text": "mail [EMAIL]"},
        {"type": "text", "text": "[NON-TEXT CONTENT]"},
    ]
    assert REDACTOR.content(None) is None


# Characters and fragments that come close to every built-in shape, for the gates' property test:
# digits of two scripts, separators, case-folding look-alikes (long s, Kelvin sign) and secret prefixes.
NEAR_MISSES = st.lists(
    st.one_of(
        st.text("0123456789٣+()-. :=@'\"", min_size=1, max_size=20),
        st.text(ALNUM + "+/_=-", min_size=1, max_size=30),
        st.sampled_from(
            [
                "sk-",
                "eyJ",
                "ghp_",
                "xoxb-",
                "AIza",
                "AKIA",
                "-----BEGIN RSA PRIVATE KEY-----",
                "token ",
                "Bearer ",
                "ba\u017fic ",
                "bas\u0131c ",
                "BAS\u0130C ",
                "\u212aey=",
                "password: ",
                "api_key=",
                "+1 ",
                "(415) ",
                "555-0100",
                "4111 1111 1111 1111",
                " ",
                "\n",
                "\u00e9",  # a non-ASCII letter inside a run of key characters: two bytes in UTF-8
            ]
        ),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(NEAR_MISSES)
def test_a_gate_never_hides_a_match(text: str) -> None:
    """A gate that says no must be right: its pattern would have changed nothing."""
    for pattern, replacement, gate in REDACTOR._rules:
        if gate is not None and not gate(text, text.casefold(), digit_count(text)):
            assert pattern.sub(replacement, text) == text, (pattern.pattern, text)


@settings(max_examples=1500, deadline=None)
@given(NEAR_MISSES)
def test_the_first_check_never_hides_a_match(text: str) -> None:
    """When ``may_hold_any`` says no, no built-in pattern would change the text."""
    if not may_hold_any(text, text.casefold(), digit_count(text)):
        for pattern, replacement, _ in BUILTINS._rules:
            assert pattern.sub(replacement, text) == text, (pattern.pattern, text)


@settings(max_examples=500, deadline=None)
@given(NEAR_MISSES)
def test_the_first_check_changes_no_redaction(text: str) -> None:
    """A redactor with only the built-ins (first check on) redacts like one that must run every gate."""
    assert BUILTINS.text(text) == EVERY_GATE.text(text)


def test_plain_text_skips_the_patterns_and_marked_text_does_not() -> None:
    assert not may_hold_any("Hello! How can I help you today?", "hello! how can i help you today?", 0)
    for text in ("mail me at a@b.co", "key=abcd1234", "Bearer xyz", "+1 415", "I am 42", "eyJ", "ghp_"):
        assert may_hold_any(text, text.casefold(), digit_count(text)), text
