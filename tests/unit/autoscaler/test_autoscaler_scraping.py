"""The metrics reader against real HTTP servers exporting the router's real prometheus-client gauges."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from metricservers import broken_server, closed_port_url, router_servers

from flotilla.autoscaler import discovering, scraping
from flotilla.autoscaler.scraping import ModelLoad


@pytest_asyncio.fixture(loop_scope="function")  # aiohttp binds a session to its loop
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as c:
        yield c


async def test_sums_in_flight_and_queued_over_router_pods(client: aiohttp.ClientSession) -> None:
    with router_servers(2) as (a, b):
        a.set("coder", in_flight=3, queued=1)
        b.set("coder", in_flight=5)
        b.set("pocket", queued=2)
        result = await scraping.scrape(client, [a.url, b.url])
    assert result.answered == 2
    assert result.failed == ()
    assert result.load("coder") == ModelLoad(in_flight=8, queued=1)
    assert result.load("pocket") == ModelLoad(in_flight=0, queued=2)
    assert result.load("absent") == ModelLoad()
    assert result.load("coder").total == 9


async def test_a_vanished_or_broken_pod_is_skipped_and_the_rest_counted(
    client: aiohttp.ClientSession,
) -> None:
    with (
        router_servers(2) as (a, b),
        broken_server(500) as five_hundred,
        broken_server(200, b"<html>") as html,
    ):
        a.set("coder", in_flight=4)
        b.set("coder", in_flight=6)
        gone = closed_port_url()
        result = await scraping.scrape(client, [a.url, gone, b.url, five_hundred, html])
    assert result.answered == 2
    assert result.load("coder").in_flight == 10
    assert len(result.failed) == 3
    assert any("ClientConnectorError" in f for f in result.failed)
    assert any("ClientResponseError" in f for f in result.failed)
    assert any("ValueError" in f for f in result.failed)


async def test_a_pod_stopping_between_ticks(client: aiohttp.ClientSession) -> None:
    with router_servers(2) as (a, b):
        a.set("coder", in_flight=2)
        b.set("coder", in_flight=2)
        first = await scraping.scrape(client, [a.url, b.url])
        b.stop()
        second = await scraping.scrape(client, [a.url, b.url])
    assert (first.answered, first.load("coder").total) == (2, 4)
    assert (second.answered, second.load("coder").total) == (1, 2)


def test_parse_ignores_other_metrics_and_negative_values() -> None:
    text = (
        "# TYPE flotilla_router_in_flight gauge\n"
        'flotilla_router_in_flight{model="a"} 2\n'
        'flotilla_router_in_flight{model="b"} -1\n'
        "# TYPE flotilla_router_queued gauge\n"
        'flotilla_router_queued{model="a"} 1\n'
        "# TYPE flotilla_router_requests counter\n"
        'flotilla_router_requests_total{model="a",task="chat",outcome="ok"} 99\n'
    )
    assert scraping.parse(text) == {"a": ModelLoad(2, 1), "b": ModelLoad(0, 0)}


def test_endpoints_from_slices_keeps_ready_addresses_on_the_admin_port() -> None:
    slices = [
        {
            "ports": [{"name": "http", "port": 9090}, {"name": "admin", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.0.0.2"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": False}},
                {"addresses": ["10.0.0.4"]},
                {"addresses": ["fd00::5"], "conditions": {"ready": True}},
            ],
        },
        {"ports": [{"name": "admin", "port": 8080}], "endpoints": [{"addresses": ["10.0.0.2"]}]},
        {"ports": None, "endpoints": [{"addresses": ["10.0.0.9"]}]},
    ]
    assert discovering.endpoints_from_slices(slices) == [
        "http://10.0.0.2:8080",
        "http://10.0.0.4:8080",
        "http://[fd00::5]:8080",
    ]
