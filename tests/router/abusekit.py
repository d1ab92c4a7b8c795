"""Adversarial completion requests for the abuse suite, as hypothesis strategies.

Each strategy draws an ``Abuse``: a category (for the summary table), a route, extra headers and the raw body
bytes. Bodies start from the OpenAI chat/completions request schema and are then broken in one of the ways
clients (and attackers) break them: wrong types at any depth, extra fields, numbers out of range, ``NaN`` and
``Infinity`` literals, duplicate keys, nesting past the parser's limit, huge strings, invalid UTF-8, byte
order marks and other encodings, lone surrogates, and bytes that are not JSON at all. Header values are drawn
from what an HTTP client can send (no CR, LF or NUL: the raw-socket cases in ``rawabuse`` send those).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
# Everything a client may name; "gpt-9" and "" are unknown (404 / 400), the rest route somewhere.
MODELS = ("auto", "chat", "code", "writing", "pod", "frontier", "claude", "gpt-9", "")
_GOOD_MODELS = ("auto", "chat", "code", "writing", "pod", "frontier", "claude")
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
TASK_HEADER = b"x-flotilla-task"
# Raw JSON number literals the router must take or refuse with a 400: out of range, not finite, not JSON.
NUMBER_LITERALS = (
    "0",
    "-1",
    "-0",
    "1.5",
    "1e999",
    "-1e999",
    "1e-999",
    "NaN",
    "Infinity",
    "-Infinity",
    "9223372036854775808",
    "18446744073709551616",
    "1" + "0" * 5000,  # over Python's int-string digit limit: ValueError in the parser
    "0x10",
    "01",
    "+1",
    ".5",
)
NUMBER_FIELDS = ("max_tokens", "max_completion_tokens", "n", "temperature", "top_p", "seed", "logprobs")
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00")
# Control bytes are not allowed in a header value: uvicorn refuses them before the app (rawabuse sends them).
_CONTROLS = frozenset({*range(0x20), 0x7F}) - {0x09}
ENCODINGS = ("utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1")


@dataclass(frozen=True)
class Abuse:
    """One request to send: ``category`` names the kind of abuse in the summary."""

    category: str
    path: str
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def stream(self) -> bool:
        """Whether the body (if it parses) asks for a stream; the checker then expects SSE on a 200."""
        try:
            payload = json.loads(self.body)
        except (ValueError, RecursionError):
            return False
        return isinstance(payload, dict) and payload.get("stream") is True


_text = st.text(max_size=30)
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | _text
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)
_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_audio"]), "text": _text},
    optional={"image_url": st.fixed_dictionaries({"url": _text})},
)
_content = st.none() | _text | st.lists(_part, max_size=3)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(ROLES), "content": _content},
    optional={"name": _text, "tool_call_id": _text},
)
_common = {
    "model": st.sampled_from(_GOOD_MODELS),
    "stream": st.booleans(),
    "max_tokens": st.integers(1, 16),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "stop": st.none() | _text | st.lists(_text, max_size=3),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "n": st.just(1),
    "user": _text,
    "seed": st.integers(-(2**63), 2**63 - 1),
}
valid_chat = st.fixed_dictionaries({"messages": st.lists(_message, min_size=1, max_size=4)}, optional=_common)
valid_completion = st.fixed_dictionaries(
    {"prompt": _text | st.lists(_text, min_size=1, max_size=3)}, optional=_common
)


@st.composite
def valid_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A route and a request body that follows the schema (the router should answer 200 or a 4xx)."""
    if draw(st.booleans()):
        return CHAT, draw(valid_chat)
    return COMPLETIONS, draw(valid_completion)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON value (keys of objects, indexes of arrays), the root excluded."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _set(value: Any, path: tuple[Any, ...], new: Any) -> None:
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = new


def _dumps(draw: st.DrawFn, payload: Any) -> bytes:
    """JSON bytes; sometimes without ASCII escapes (lone surrogates then become invalid UTF-8)."""
    ascii_only = draw(st.booleans())
    return json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _splice(body: bytes, member: bytes) -> bytes:
    """``body`` (a JSON object) with one more raw member before its closing brace."""
    return body[:-1] + b", " + member + b"}"


@st.composite
def abuses(draw: st.DrawFn) -> Abuse:
    """One adversarial request; the category weights favour cheap requests (most are rejected fast)."""
    path, payload = draw(valid_bodies())
    category = draw(
        st.sampled_from(
            [
                "valid",
                "valid",
                "wrong-type",
                "wrong-type",
                "provider-wrong-type",
                "extra-fields",
                "number-literal",
                "duplicate-key",
                "deep-nesting",
                "huge-string",
                "invalid-utf8",
                "encoding-bom",
                "surrogates",
                "not-json",
                "task-header",
            ]
        )
    )
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if category == "provider-wrong-type":  # the same, on the Anthropic translation path
        payload["model"] = draw(st.sampled_from(["claude", "writing"]))
        locations = [p for p in _paths(payload) if p != ("model",)]
        _set(payload, draw(st.sampled_from(locations)), draw(json_values))
        body = _dumps(draw, payload)
    elif category == "wrong-type":  # any field, at any depth, becomes any JSON value
        locations = _paths(payload)
        if locations and draw(st.integers(0, 9)):
            _set(payload, draw(st.sampled_from(locations)), draw(json_values))
        else:
            payload = draw(json_values)
        body = _dumps(draw, payload)
    elif category == "extra-fields":
        payload.update(draw(st.dictionaries(_text, json_values, min_size=1, max_size=5)))
        body = _dumps(draw, payload)
    elif category == "number-literal":
        field = draw(st.sampled_from(NUMBER_FIELDS))
        literal = draw(st.sampled_from(NUMBER_LITERALS))
        body = _splice(json.dumps(payload).encode(), f'"{field}": {literal}'.encode())
    elif category == "duplicate-key":
        key = draw(st.sampled_from(["messages", "prompt", "model", "stream", "max_tokens"]))
        value = json.dumps(draw(json_values)).encode()
        base = json.dumps(payload).encode()
        body = _splice(base, b'"' + key.encode() + b'": ' + value)
        if draw(st.booleans()):  # the duplicate first, the schema-valid value last
            body = b'{"' + key.encode() + b'": ' + value + b", " + base[1:]
    elif category == "deep-nesting":
        depth = draw(st.sampled_from([50, 500, 990, 1000, 1100, 5000, 50_000, 120_000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"a":[', b"]}")]))
        nested = opener * depth + b"0" + closer * depth
        if draw(st.booleans()):
            nested = nested[: len(nested) - draw(st.integers(1, depth))]  # unbalanced
        field = draw(st.sampled_from(["tools", "messages", "metadata", "stop"]))
        body = (
            nested
            if draw(st.booleans())
            else _splice(json.dumps(payload).encode(), f'"{field}": '.encode() + nested)
        )
    elif category == "huge-string":
        size = draw(st.sampled_from([70_000, 400_000, 1_048_000, 1_048_577, 2_000_000]))
        char = draw(st.sampled_from(["x", "é", "\u4e2d", "\\", '"', " "]))
        payload[draw(st.sampled_from(["user", "stop", "padding"]))] = char * (size // len(char.encode()))
        body = _dumps(draw, payload)
    elif category == "invalid-utf8":
        body = json.dumps(payload, ensure_ascii=False).encode()
        junk = draw(st.binary(min_size=1, max_size=6).map(lambda b: bytes(0x80 | x for x in b)))
        at = draw(st.integers(0, len(body)))
        body = body[:at] + junk + body[at:]
    elif category == "encoding-bom":
        text = json.dumps(payload, ensure_ascii=draw(st.booleans()))
        if draw(st.booleans()):
            body = draw(st.sampled_from(BOMS)) + text.encode()
        else:
            body = text.encode(draw(st.sampled_from(ENCODINGS)), "replace")
    elif category == "surrogates":
        lone = draw(st.sampled_from(["\ud800", "\udfff", "\udc80x", "\ud83d", "a\ud800b"]))
        if path == CHAT:
            payload["messages"].append({"role": "user", "content": lone})
        else:
            payload["prompt"] = lone
        payload["user"] = lone
        body = _dumps(draw, payload)
    elif category == "not-json":
        body = draw(
            st.binary(max_size=200)
            | st.sampled_from([b"", b" ", b"null", b"true", b"1", b'"x"', b"{", b"}", b"{}", b"[]", b"{,}"])
            | _text.map(lambda s: s.encode("utf-8", "surrogatepass"))
        )
    elif category == "task-header":
        value = draw(
            st.sampled_from([b"chat", b"code", b"writing", b"auto", b"", b"CHAT", b"chat ", b"x" * 4000])
            | st.binary(min_size=1, max_size=60).filter(lambda b: not set(b) & _CONTROLS)
            | _text.map(lambda s: s.encode("utf-8", "surrogatepass")).filter(lambda b: not set(b) & _CONTROLS)
        )
        value = value.strip(b" \t")
        headers = ((TASK_HEADER, value),)
        if draw(st.booleans()):
            headers += ((b"x-flotilla-model", b"pod"), (b"x-flotilla-cost-usd", b"-1"))
        body = _dumps(draw, payload)
    else:
        body = _dumps(draw, payload)
    if draw(st.integers(0, 9)) == 0:  # a content type that is not JSON: the router reads the body anyway
        headers += (
            (
                b"content-type",
                draw(st.sampled_from([b"text/plain", b"application/x-www-form-urlencoded", b"\xff"])),
            ),
        )
    route = path if draw(st.integers(0, 9)) else draw(st.sampled_from([CHAT, COMPLETIONS]))
    return Abuse(category, route, body, headers)
