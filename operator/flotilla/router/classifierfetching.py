"""Fetch a fleet's own classifier head by URL, pinned by sha256, and check it fits; router and operator alike.

``routing.classifier.model`` names one small ``.npz`` file (``flotilla classifier train``) by ``url`` and
``sha256``. The operator vets it before the router config names it (``reconcile/vetting.py``) and every
router replica loads it (``app.RouterState``): both fetch the same bytes and use them only if they hash to
the pinned digest, so a file changed at its URL is refused rather than half rolled out.

Files are cached on disk by digest (``CACHE_DIR``, verified again on every read), so config reloads and
operator resumes do not fetch them again. A download is capped (``MAX_BYTES``, ``TIMEOUT_SECONDS``).

Errors: every failure is a ``FetchError`` (a ``ConfigError``) saying what is wrong; ``retryable`` marks the
ones that may pass by themselves (the server is down, slow, or does not have the file yet), as opposed to
bytes that are not the pinned ones. A file that is fetched but is not a usable head raises ``ConfigError``
from ``heads``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path

import aiohttp

from flotilla import errors
from flotilla.api import routerconfig
from flotilla.router.classifying import embedding, heads

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024 * 1024
"""Largest classifier file accepted (a head is ~0.5 MB; this only stops a wrong URL from filling memory)."""
TIMEOUT_SECONDS = 10.0
"""Whole-download limit: connect, headers and body."""
CACHE_DIR = Path(tempfile.gettempdir()) / "flotilla-classifiers"
"""Where fetched files are kept, named by their sha256 (the router and operator pods mount /tmp)."""
_CHUNK = 64 * 1024


class FetchError(errors.ConfigError):
    """The classifier file could not be fetched, or its bytes are not the pinned ones."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
        """Trying again later may succeed (network, HTTP error status); False for wrong or oversized bytes."""


async def fetch(
    url: str,
    sha256: str,
    *,
    cache_dir: Path | None = CACHE_DIR,
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT_SECONDS,
) -> bytes:
    """The file at ``url`` if its sha256 is ``sha256``: from ``cache_dir`` when it is there, else downloaded
    (and then cached). Raises ``FetchError``."""
    if cache_dir is not None:
        cached = await asyncio.to_thread(_read_cached, cache_dir, sha256)
        if cached is not None:
            return cached
    data = await _download(url, max_bytes, timeout)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise FetchError(
            f"classifier {url} has sha256 {digest}, but the fleet pins {sha256}: "
            "the file at the URL is not the one named",
            retryable=False,
        )
    if cache_dir is not None:
        await asyncio.to_thread(_write_cached, cache_dir, sha256, data)
    return data


async def _download(url: str, max_bytes: int, timeout: float) -> bytes:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url, allow_redirects=True) as response,
        ):
            if response.status != 200:
                raise FetchError(
                    f"classifier {url}: HTTP {response.status} {response.reason or ''}".rstrip(),
                    retryable=True,
                )
            if (response.content_length or 0) > max_bytes:
                raise _too_large(url, max_bytes)
            body = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise _too_large(url, max_bytes)
            return bytes(body)
    except FetchError:
        raise
    except TimeoutError:
        raise FetchError(
            f"classifier {url}: no complete answer within {timeout:g} s", retryable=True
        ) from None
    except (aiohttp.ClientError, ValueError, OSError) as exc:  # ValueError: aiohttp's invalid URL
        raise FetchError(
            f"classifier {url} cannot be fetched: {exc or type(exc).__name__}", retryable=True
        ) from None


def _too_large(url: str, max_bytes: int) -> FetchError:
    size = f"{max_bytes // 2**20} MiB" if max_bytes >= 2**20 else f"{max_bytes} bytes"
    return FetchError(f"classifier {url} is larger than {size}", retryable=False)


def _read_cached(cache_dir: Path, sha256: str) -> bytes | None:
    try:
        data = (cache_dir / sha256).read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:  # damaged or tampered with: fetch it again
        log.warning("cached classifier %s does not match its digest; fetching it again", sha256)
        return None
    return data


def _write_cached(cache_dir: Path, sha256: str, data: bytes) -> None:
    """Write atomically (a temporary file renamed), so a concurrent reader sees all of it or nothing; a
    cache that cannot be written only costs a download next time."""
    temporary: str | None = None
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=cache_dir, prefix=f".{sha256}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, cache_dir / sha256)
    except OSError as exc:
        log.warning("cannot cache classifier %s in %s: %s", sha256, cache_dir, exc)
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def check(
    data: bytes, origin: str, tasks: list[str], default_task: str, embedder: embedding.StaticEmbedder
) -> heads.Head:
    """Parse a head and check it fits ``embedder`` and covers the fleet's tasks (``ConfigError`` if not).
    CPU-bound: call it in a thread."""
    head = heads.from_bytes(data, origin)
    head.check_compatible(embedder)
    heads.check_covers(head, tasks, default_task)
    return head


async def load(
    model: routerconfig.ClassifierModel, config: routerconfig.RouterConfig, cache_dir: Path | None = CACHE_DIR
) -> heads.Head:
    """The head ``model`` names, fetched, verified and checked against ``config``'s tasks and this router's
    embedding. Raises ``ConfigError`` (``FetchError`` for fetching)."""
    data = await fetch(model.url, model.sha256, cache_dir=cache_dir)
    tasks = [t.name for t in config.tasks]
    return await asyncio.to_thread(
        lambda: check(data, f"classifier {model.url}", tasks, config.default_task, embedding.load())
    )
