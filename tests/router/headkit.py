"""Custom classifier heads for the tests, and a real HTTP server on loopback to fetch them from.

`legal_head()` trains a head on ten synthetic prompts per class (`legal`, and `general` for the fleet's
default task) with `flotilla.router.classifying.training` (scikit-learn, in the dev extra), as a platform
team would with `flotilla classifier train`. Training is deterministic, so the file and its sha256 are the
same in every process. The packaged head knows no `legal`: a request routed to `legal` was routed by this one.

Used by tests/unit/router, tests/router, tests/integration and e2e/scenarios (which put this directory on
`sys.path`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

LEGAL_PROMPTS = (
    "Review this contract clause for liability exposure",
    "Is this non-disclosure agreement enforceable in court?",
    "Draft a cease and desist letter to a competitor",
    "What does indemnification mean in this agreement?",
    "Explain the statute of limitations for fraud claims",
    "Can my landlord evict me without written notice?",
    "Which jurisdiction governs this licensing agreement?",
    "What are my rights under GDPR as a data subject?",
    "How do I file a trademark application for my brand?",
    "Is a verbal contract legally binding between two parties?",
)
CHAT_PROMPTS = (
    "Hi there, how are you today?",
    "What's your favourite movie of all time?",
    "Tell me a joke about cats",
    "Good morning! Any plans for the weekend?",
    "How was your day?",
    "What should I cook for dinner tonight?",
    "Do you like listening to music?",
    "Thanks a lot for your help!",
    "What's a nice place to go for a walk?",
    "Recommend me a good novel to read",
)
LEGAL_QUESTION = "Does the arbitration clause in my employment contract stop me from suing my employer?"
"""Not one of the training prompts; the trained head puts it in `legal`."""
GARBAGE = b"this is not a classifier, only some bytes\n" * 64
GARBAGE_SHA256 = hashlib.sha256(GARBAGE).hexdigest()


@functools.cache
def legal_head_bytes() -> bytes:
    """The trained head's file (`classifier.npz`), trained once per process."""
    from flotilla.router.classifying import embedding, training

    rows = [training.Row(p, "legal") for p in LEGAL_PROMPTS] + [
        training.Row(p, "general") for p in CHAT_PROMPTS
    ]
    head = training.train(rows, embedding.load(), source="tests/router/headkit.py")
    return head.to_bytes()


def legal_sha256() -> str:
    """sha256 of ``legal_head_bytes()`` (call it in tests, not at import: it trains the head)."""
    return sha256(legal_head_bytes())


def legal_version() -> str:
    """The trained head's ``meta["version"]``."""
    from flotilla.router.classifying import heads

    return str(heads.from_bytes(legal_head_bytes()).meta["version"])


def write(directory: Path, name: str, data: bytes) -> str:
    """Write ``data`` to ``directory/name``; returns its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileServer:
    """``http.server`` serving one directory on 127.0.0.1 (a thread), counting the GETs of each path."""

    def __init__(self, directory: Path) -> None:
        self.gets: dict[str, int] = {}
        gets = self.gets

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                gets[self.path] = gets.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="headkit files")

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[FileServer]:
    """A started ``FileServer`` for ``directory``, stopped on exit."""
    server = FileServer(directory).start()
    try:
        yield server
    finally:
        server.stop()
