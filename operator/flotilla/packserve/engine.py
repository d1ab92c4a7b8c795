"""One model's llama.cpp engine: a ``Llama`` that can be freed and loaded again.

Answers come from llama-cpp-python's own OpenAI-shaped ``create_chat_completion``/``create_completion``;
a ``ValueError`` from them (a prompt longer than the context, a bad message) is the client's mistake.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

from flotilla.packserve.config import PackModel
from flotilla.packserve.requests import Kind


class Engine:
    def __init__(self, spec: PackModel) -> None:
        self.spec = spec
        self._llama: Any = None

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def load(self) -> None:
        if self._llama is not None:
            return
        from llama_cpp import Llama

        self._llama = Llama(
            model_path=str(self.spec.gguf),
            n_ctx=self.spec.context_length,
            n_threads=self.spec.threads,
            n_threads_batch=self.spec.threads,
            chat_format=self.spec.chat_format,
            verbose=False,
        )

    def unload(self) -> None:
        """Free the model's weights and KV cache (the mmapped GGUF pages go with them)."""
        if self._llama is None:
            return
        self._llama.close()
        self._llama = None
        gc.collect()

    def answer(self, kind: Kind, kwargs: dict[str, Any]) -> Any:
        """The whole response, or an iterator of chunks when ``kwargs['stream']``."""
        if self._llama is None:
            raise RuntimeError(f"{self.spec.name} is not loaded")
        create = self._llama.create_chat_completion if kind == "chat" else self._llama.create_completion
        return create(**kwargs, model=self.spec.name)

    def stream(self, kind: Kind, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        chunks: Iterator[dict[str, Any]] = self.answer(kind, {**kwargs, "stream": True})
        return chunks
