"""The router bench's confidence interval for a median of paired changes (``bench/router/report.py``)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "router"))
import report  # bench scripts are not a package: imported by path


def test_the_interval_holds_the_median_and_narrows_with_more_pairs() -> None:
    rng = random.Random(7)
    few = report.median_interval([rng.gauss(-0.03, 0.1) for _ in range(16)])
    many = report.median_interval([rng.gauss(-0.03, 0.1) for _ in range(256)])
    for change in (few, many):
        assert change.low <= change.median <= change.high
    assert many.pairs == 256
    assert many.high - many.low < (few.high - few.low) / 2


def test_the_interval_covers_the_true_median_about_95_times_in_100() -> None:
    rng = random.Random(11)
    trials = 2000
    covered = 0
    for _ in range(trials):
        change = report.median_interval([rng.gauss(0.0, 1.0) for _ in range(40)])
        covered += change.low <= 0.0 <= change.high
    assert 0.93 <= covered / trials <= 0.985


def test_no_pairs_give_no_figure() -> None:
    change = report.median_interval([])
    assert change.pairs == 0
    assert change.median != change.median  # NaN
