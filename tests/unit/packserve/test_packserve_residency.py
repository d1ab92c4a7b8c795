"""The pack's residency: at most ``limit`` models loaded, least recently used idle ones unloaded first."""

from __future__ import annotations

import asyncio
import contextlib

from flotilla.packserve.residency import Residency


def make(loaded: list[str], limit: int) -> tuple[Residency, list[str]]:
    log: list[str] = []

    async def load(name: str) -> None:
        await asyncio.sleep(0.01)
        log.append(f"load {name}")

    async def unload(name: str) -> None:
        log.append(f"unload {name}")

    return Residency(loaded, limit, load, unload), log


async def test_the_least_recently_used_model_is_unloaded() -> None:
    residency, log = make(["a", "b"], 2)
    async with residency.using("a"):
        pass
    async with residency.using("c"):  # b was used least recently
        assert residency.loaded == ["a", "c"]
    assert log == ["unload b", "load c"]
    assert (residency.loads, residency.unloads) == (1, 1)


async def test_a_busy_model_is_not_unloaded_and_the_request_waits_for_an_idle_one() -> None:
    residency, log = make(["a", "b"], 2)
    a_busy, release_a = asyncio.Event(), asyncio.Event()

    async def hold_a() -> None:
        async with residency.using("a"):
            a_busy.set()
            await release_a.wait()

    async with residency.using("b"):
        pass  # now a is least recently used, but busy
    holder = asyncio.create_task(hold_a())
    await a_busy.wait()
    async with residency.using("c"):
        assert log == ["unload b", "load c"]  # b was idle
    b_busy = asyncio.Event()

    async def hold_b_after_c() -> None:
        async with residency.using("b"):  # a and c loaded, a busy: c goes
            b_busy.set()

    await hold_b_after_c()
    assert log[-2:] == ["unload c", "load b"]
    assert residency.loaded == ["a", "b"]
    release_a.set()
    await holder


async def test_with_every_model_busy_a_request_is_held_until_one_finishes() -> None:
    residency, log = make(["a"], 1)
    release = asyncio.Event()

    async def hold_a() -> None:
        async with residency.using("a"):
            await release.wait()

    holder = asyncio.create_task(hold_a())
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(residency.using("b").__aenter__())
    await asyncio.sleep(0.05)
    assert not waiting.done() and log == []
    release.set()
    await holder
    await asyncio.wait_for(waiting, 1)
    assert log == ["unload a", "load b"]


async def test_a_loaded_model_is_not_held_behind_another_models_load() -> None:
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow_load(name: str) -> None:
        started.set()
        await finish.wait()

    async def unload(name: str) -> None:
        pass

    residency = Residency(["a"], 2, slow_load, unload)
    loading = asyncio.create_task(residency.using("b").__aenter__())
    await started.wait()
    async with asyncio.timeout(1), residency.using("a"):  # answered while b loads
        assert residency.loaded == ["a"]
    finish.set()
    await loading
    assert residency.loaded == ["a", "b"]


async def test_a_request_cancelled_during_the_load_still_books_it() -> None:
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow_load(name: str) -> None:
        started.set()
        await finish.wait()

    async def unload(name: str) -> None:
        pass

    residency = Residency([], 1, slow_load, unload)
    held = asyncio.create_task(residency.using("a").__aenter__())
    await started.wait()
    held.cancel()
    await asyncio.sleep(0.01)
    assert not held.done()  # waits for the model server's load to finish
    finish.set()
    with contextlib.suppress(asyncio.CancelledError):
        await held
    assert residency.loaded == ["a"] and residency.loads == 1
