"""Pricing: usage times price, and what the first cloud fallback would have cost."""

from __future__ import annotations

import pytest

from flotilla.api.routerconfig import Price
from flotilla.router import pricing


def test_bill_and_saved():
    local = Price(input_per_mtok=0.1, output_per_mtok=0.2)
    cloud = Price(input_per_mtok=2, output_per_mtok=8)
    bill = pricing.bill(pricing.Usage(1000, 500), local, cloud)
    assert bill.dollars == pytest.approx((1000 * 0.1 + 500 * 0.2) / 1e6)
    assert bill.saved == pytest.approx((1000 * 2 + 500 * 8) / 1e6 - bill.dollars)
    assert pricing.bill(pricing.Usage(10, 10), cloud, local).saved == 0  # never negative
    assert pricing.bill(pricing.Usage(10, 10), local, None).saved == 0


def test_usage_of_tolerates_missing_and_malformed():
    assert pricing.usage_of({"usage": {"prompt_tokens": 2, "completion_tokens": 3}}) == pricing.Usage(2, 3)
    assert pricing.usage_of({"usage": None}) is None
    assert pricing.usage_of({"usage": {"prompt_tokens": "2"}}) is None
    assert pricing.usage_of(None) is None


@pytest.mark.parametrize("bad", [-1, True, 2.5, "7", None])
def test_bad_token_counts_are_absent_usage(bad: object):
    assert pricing.count(bad) is None
    assert pricing.usage_of({"usage": {"prompt_tokens": bad, "completion_tokens": 3}}) is None
    assert pricing.usage_of({"usage": {"prompt_tokens": 3, "completion_tokens": bad}}) is None


def test_anthropic_negative_usage_is_absent():
    from flotilla.router import anthropic

    body = {"type": "message", "content": [{"type": "text", "text": "x"}], "usage": {"input_tokens": -4}}
    assert anthropic.from_response(body, chat=True)[1] is None
