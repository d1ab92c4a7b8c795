"""One model's llama.cpp engine: a ``Llama`` that can be freed and loaded again.

Answers come from llama-cpp-python's own OpenAI-shaped ``create_chat_completion``/``create_completion``;
a ``ValueError`` from them (a prompt longer than the context, a bad message) is the client's mistake.

A lock serialises every use of the ``Llama``, a stream's for as long as it is iterated: when a client goes
away mid-stream Ray Serve counts the request as done while the generating thread may still be inside
llama.cpp, and a second thread in the same context aborts the process (seen: SIGABRT in ``sample``).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Generator
from typing import Any

from flotilla.packserve.config import PackModel
from flotilla.packserve.requests import Kind


class Engine:
    def __init__(self, spec: PackModel) -> None:
        self.spec = spec
        self._llama: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def load(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> None:
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
        with self._lock:
            if self._llama is None:
                return
            self._llama.close()
            self._llama = None
            gc.collect()

    def answer(self, kind: Kind, kwargs: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            result: dict[str, Any] = self._create(kind, {**kwargs, "stream": False})
            return result

    def stream(self, kind: Kind, kwargs: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
        """Chunks; the lock is held until the stream ends or is closed (an abandoned generator is closed
        when it is collected)."""
        with self._lock:
            yield from self._create(kind, {**kwargs, "stream": True})

    def _create(self, kind: Kind, kwargs: dict[str, Any]) -> Any:
        # Loaded on demand too: a replica Ray restarted after a crash starts unloaded.
        self._load()
        create = self._llama.create_chat_completion if kind == "chat" else self._llama.create_completion
        return create(**kwargs, model=self.spec.name)
