"""The operator's classifier vetting against a real HTTP server on loopback: what the router config ends up
naming after a good file, a bad one (with and without a previous one), an unreachable one; and how the
accepted classifier replaces the spec's before rendering."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "router"))  # headkit

import headkit

from flotilla.reconcile import desiring, vetting


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[headkit.FileServer]:
    directory = tmp_path_factory.mktemp("classifiers")
    headkit.write(directory, "legal.npz", headkit.legal_head_bytes())
    headkit.write(directory, "garbage.npz", headkit.GARBAGE)
    with headkit.serving(directory) as server:
        yield server


def fleet(
    url: str | None, sha256: str | None = None, tasks: tuple[str, ...] = ("legal", "chat")
) -> dict[str, Any]:
    routing: dict[str, Any] = {
        "defaultTask": "chat",
        "tasks": [{"name": t, "fallbacks": ["gpt"]} for t in tasks],
    }
    if url is not None:
        routing["classifier"] = {"model": {"url": url, "sha256": sha256 or headkit.legal_sha256()}}
    fallback = {"name": "gpt", "provider": "openai-compatible", "baseURL": "http://gpt/v1", "model": "g"}
    return {
        "metadata": {"name": "f", "namespace": "ns", "generation": 1},
        "spec": {"fallbacks": [fallback], "routing": routing},
    }


async def test_a_fleet_without_a_classifier_needs_no_vetting(tmp_path: Path) -> None:
    assert await vetting.Vetter(tmp_path).vet(fleet(None), None) == vetting.PACKAGED


async def test_a_good_file_is_accepted_and_fetched_once(files: headkit.FileServer, tmp_path: Path) -> None:
    vetter = vetting.Vetter(tmp_path)
    url = f"{files.url}/legal.npz"
    fetched_before = files.gets.get("/legal.npz", 0)
    verdict = await vetter.vet(fleet(url), None)
    assert verdict.error is None and verdict.wanted
    assert verdict.accepted is not None
    assert (verdict.accepted.url, verdict.accepted.sha256, verdict.accepted.tasks) == (
        url,
        headkit.legal_sha256(),
        ("general", "legal"),
    )
    assert verdict.accepted.version == headkit.legal_version()
    assert await vetter.vet(fleet(url), verdict.accepted) == verdict  # a resume: no second download
    assert files.gets["/legal.npz"] == fetched_before + 1


async def test_a_bad_file_keeps_the_previous_classifier(files: headkit.FileServer, tmp_path: Path) -> None:
    vetter = vetting.Vetter(tmp_path)
    good = await vetter.vet(fleet(f"{files.url}/legal.npz"), None)
    bad = await vetter.vet(fleet(f"{files.url}/garbage.npz", headkit.GARBAGE_SHA256), good.accepted)
    assert bad.accepted == good.accepted and not bad.retryable
    assert bad.error is not None and "garbage.npz is not a valid classifier" in bad.error
    first = await vetter.vet(fleet(f"{files.url}/garbage.npz", headkit.GARBAGE_SHA256), None)
    assert first.accepted is None  # nothing accepted before: the packaged classifier


async def test_an_unreachable_file_is_retried_and_the_routers_keep_theirs(
    files: headkit.FileServer, tmp_path: Path
) -> None:
    vetter = vetting.Vetter(tmp_path)
    good = await vetter.vet(fleet(f"{files.url}/legal.npz"), None)
    missing = await vetter.vet(fleet(f"{files.url}/not-there.npz", "0" * 64), good.accepted)
    assert missing.retryable and missing.accepted == good.accepted
    assert missing.error is not None and "HTTP 404" in missing.error


async def test_a_file_without_the_fleets_tasks_is_rejected(files: headkit.FileServer, tmp_path: Path) -> None:
    verdict = await vetting.Vetter(tmp_path).vet(
        fleet(f"{files.url}/legal.npz", tasks=("legal", "code", "chat")), None
    )
    assert verdict.accepted is None
    assert verdict.error is not None and "do not cover the fleet's task(s) code" in verdict.error


def test_the_accepted_classifier_replaces_the_specs_before_rendering() -> None:
    body = fleet("https://new.example/bad.npz", "1" * 64)
    previous = {"url": "https://old.example/good.npz", "sha256": "2" * 64}
    table = desiring.router_config(desiring.with_classifier(body, previous))
    assert table.classifier.model is not None and table.classifier.model.model_dump() == previous
    assert desiring.router_config(desiring.with_classifier(body, None)).classifier.model is None
    plain = fleet(None)
    assert desiring.with_classifier(plain, previous) is plain  # no classifier in the spec: none rendered
