"""Host directories that a test's hostPath volumes on the real node serve: a training sink and the model.

The real node is this machine, so a pod's hostPath volume is a directory here, with this machine's
permissions: the pods run as uid 1000, which must write the sink (router, training Job) and read the model.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

GGUF = Path.home() / ".cache" / "flotilla" / "models" / "gemma-3-270m-q4_k_m.gguf"  # scripts/gemma-model


@contextlib.contextmanager
def training_dirs(prefix: str, sub_path: str = "") -> Iterator[tuple[Path, Path]]:
    """(sink, weights) under /var/tmp: the sink writable by any uid (with ``sub_path`` made inside it), the
    weights a readable copy of the Gemma 3 270M GGUF; both removed afterwards."""
    sink = Path(tempfile.mkdtemp(prefix=f"{prefix}-sink-", dir="/var/tmp"))
    weights = Path(tempfile.mkdtemp(prefix=f"{prefix}-gemma-", dir="/var/tmp"))
    try:
        for path in (sink, sink / sub_path):
            path.mkdir(exist_ok=True)
            path.chmod(0o777)  # hostPath volumes keep the host's permissions; the pods write as uid 1000
        weights.chmod(0o755)
        shutil.copyfile(GGUF, weights / GGUF.name)
        (weights / GGUF.name).chmod(0o644)
        yield sink, weights
    finally:
        shutil.rmtree(sink, ignore_errors=True)
        shutil.rmtree(weights, ignore_errors=True)
