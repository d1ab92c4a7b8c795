"""High-precision writing requests override the head; questions about writing and code requests do not."""

from __future__ import annotations

import pytest

from flotilla.router.classifying import overrides

REQUESTS = [
    "Write a short poem about autumn leaves falling on a quiet street.",
    "Please compose a persuasive essay arguing that cities should plant more trees.",
    "Can you draft a cover letter for a junior accountant position?",
    "写一首关于故乡月亮的七言绝句。",
    "帮我写一封感谢信给帮我搬家的邻居。",
    "请把下面这段话翻译成英文：我们明天早上八点出发。",  # noqa: RUF001
    "帮我润色一下这段自我介绍，让它更自然一些。",  # noqa: RUF001
    "猫についての短い詩を書いてください。",
    "Écris un poème sur la pluie d'automne.",
    "Напиши короткий рассказ о старом маяке.",  # noqa: RUF001
    "고양이에 관한 시를 써 줘.",
    "Escribe un cuento corto sobre un dragón tímido.",
    "Schreib mir ein Gedicht über den Winter.",
]
NOT_REQUESTS = [
    "Write a Python function that merges two sorted lists.",
    "请编写一段 Python 代码，计算斐波那契数列的前20项。",  # noqa: RUF001
    "把这段 Java 代码改写成 Python 代码。",
    "What makes a good essay introduction?",
    "Who wrote the poem 'The Road Not Taken'?",
    "《西游记》的作者是谁？",  # noqa: RUF001
    "How many words should a cover letter have?",
    "Explique-moi comment fonctionne la photosynthèse.",
]


@pytest.mark.parametrize("prompt", REQUESTS)
def test_writing_requests_fire(prompt: str) -> None:
    assert overrides.writing_request(prompt)


@pytest.mark.parametrize("prompt", NOT_REQUESTS)
def test_questions_and_code_do_not(prompt: str) -> None:
    assert not overrides.writing_request(prompt)


def test_only_the_opening_is_read() -> None:
    pasted = "List the people named in this text:\n" + "The meeting ran long. " * 20 + "写一首诗"
    assert not overrides.writing_request(pasted)
    assert overrides.writing_request(pasted[-4:])
