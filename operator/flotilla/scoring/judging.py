"""The LLM judge of shadow evaluation: the prompt a fleet fallback gets, and how its verdict is read.

The judge sees the question, the answer served (the reference) and the candidate's answer, and is asked
for one word. Its reply is read leniently (markdown, punctuation, "Yes." or "**No**"), but an unreadable
one is no verdict at all, never a silent "no": the request is then left unscored.
"""

from __future__ import annotations

import re

INSTRUCTIONS = (
    "You compare two answers to the same request. Reply with exactly one word: YES if the candidate "
    "answer gives the same final result as the reference answer (wording may differ), NO otherwise."
)
MAX_CHARS = 6000
"""Each of question and answers is cut to this many characters (the judge is paid per token)."""
_WORD = re.compile(r"[a-z]+")


def messages(question: str, reference: str, candidate: str) -> list[dict[str, str]]:
    """The chat messages for the judge (a system instruction, one user turn holding the three texts)."""
    body = (
        f"Request:\n{question[:MAX_CHARS]}\n\n"
        f"Reference answer:\n{reference[:MAX_CHARS]}\n\n"
        f"Candidate answer:\n{candidate[:MAX_CHARS]}\n\n"
        "Same final result? Answer YES or NO."
    )
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": body}]


def verdict(reply: str) -> bool | None:
    """True for yes, False for no (the first of those words in the reply wins), None when it has neither.
    Only the two words asked for count: "not the same" must not read as a yes."""
    for word in _WORD.findall(reply.lower()):
        if word == "yes":
            return True
        if word == "no":
            return False
    return None
