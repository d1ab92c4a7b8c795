"""Autoscaler settings from the environment: numbers of seconds, with a clear error otherwise."""

from __future__ import annotations

import pytest

from flotilla import errors
from flotilla.autoscaler import AutoscalerSettings, discovering, load


def test_defaults_and_overrides() -> None:
    assert load({}) == AutoscalerSettings()
    settings = load(
        {"FLOTILLA_AUTOSCALER_INTERVAL": "0.5", "FLOTILLA_AUTOSCALER_STATUS_PERIOD": "30"}, ("ai",)
    )
    assert (settings.interval, settings.status_period, settings.namespaces) == (0.5, 30.0, ("ai",))


@pytest.mark.parametrize(
    ("value", "message"),
    [("fast", "must be a number of seconds, not 'fast'"), ("0", "must be more than 0 seconds")],
)
def test_bad_values_name_the_variable(value: str, message: str) -> None:
    with pytest.raises(errors.UsageError, match=f"FLOTILLA_AUTOSCALER_SCRAPE_TIMEOUT {message}"):
        load({"FLOTILLA_AUTOSCALER_SCRAPE_TIMEOUT": value})


def test_host_aliases_rewrite_discovered_endpoints() -> None:
    settings = load({"FLOTILLA_AUTOSCALER_HOST_ALIASES": "router.test=127.0.0.1, a.b=10.0.0.9"})
    assert settings.host_aliases == (("router.test", "127.0.0.1"), ("a.b", "10.0.0.9"))
    urls = ["http://router.test:9100", "http://10.1.2.3:8080"]
    assert discovering.aliased(urls, dict(settings.host_aliases)) == [
        "http://127.0.0.1:9100",
        "http://10.1.2.3:8080",
    ]
    with pytest.raises(errors.UsageError, match="host=address"):
        load({"FLOTILLA_AUTOSCALER_HOST_ALIASES": "router.test"})
