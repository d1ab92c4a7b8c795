"""Autoscaler settings from the environment: numbers of seconds, with a clear error otherwise."""

from __future__ import annotations

import pytest

from flotilla import errors
from flotilla.autoscaler import AutoscalerSettings, load


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
