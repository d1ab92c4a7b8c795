"""Turn raw wrk runs into the tables the benchmark prints: latency added over ``direct``, throughput, memory.

Each cell (contender, scenario, concurrency) is run once per round; rounds interleave the contenders, and the
tables show the median over rounds. "Added" latency is computed within a round (contender minus ``direct`` in
the same scenario and concurrency, measured minutes apart at most) before taking the median.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loadgen import WrkResult

MIB = 1024 * 1024


@dataclass(frozen=True)
class Cell:
    contender: str
    scenario: str  # "json", "sse", "json-200tok"
    concurrency: int
    round: int
    wrk: WrkResult
    proxy_cpu_seconds: float  # CPU time of the contender's process tree during the run (0 for direct)
    load_cpu_seconds: float  # CPU time of wrk + the fake backend during the run
    core_busy: tuple[float, ...]  # busy fraction per core during the run, every process on the machine
    rss_peak: int

    @property
    def cpu_per_request(self) -> float | None:
        """CPU seconds of the contender's process tree per request answered (None without requests)."""
        return self.proxy_cpu_seconds / self.wrk.requests if self.wrk.requests else None


@dataclass(frozen=True)
class Row:
    contender: str
    scenario: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    added_p50_ms: float | None
    added_p99_ms: float | None
    cpu_us_per_request: float | None
    proxy_cpu_share: float  # fraction of one core the proxy used during the cell
    load_cpu_share: float  # fraction of one core wrk + backend used (near 1.0 = the harness was the limit)
    core_busy: tuple[float, ...]
    failures: int


def _median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else float("nan")


def rows(cells: list[Cell], baseline: str = "direct") -> list[Row]:
    """One row per (contender, scenario, concurrency), medians over rounds, in the order first measured."""
    base = {(c.scenario, c.concurrency, c.round): c for c in cells if c.contender == baseline}
    keys: dict[tuple[str, str, int], list[Cell]] = {}
    for cell in cells:
        keys.setdefault((cell.contender, cell.scenario, cell.concurrency), []).append(cell)
    result = []
    for (contender, scenario, concurrency), group in keys.items():
        added50, added99 = [], []
        for cell in group:
            ref = base.get((scenario, concurrency, cell.round))
            if ref is not None and contender != baseline:
                added50.append((cell.wrk.p50_us - ref.wrk.p50_us) / 1000)
                added99.append((cell.wrk.p99_us - ref.wrk.p99_us) / 1000)
        cpu = [
            c.cpu_per_request * 1e6 for c in group if c.cpu_per_request is not None and contender != baseline
        ]
        busy = tuple(_median(b) for b in zip(*(c.core_busy for c in group), strict=True))
        result.append(
            Row(
                contender=contender,
                scenario=scenario,
                concurrency=concurrency,
                rps=_median(c.wrk.rps for c in group),
                p50_ms=_median(c.wrk.p50_us / 1000 for c in group),
                p99_ms=_median(c.wrk.p99_us / 1000 for c in group),
                added_p50_ms=_median(added50) if added50 else None,
                added_p99_ms=_median(added99) if added99 else None,
                cpu_us_per_request=_median(cpu) if cpu else None,
                proxy_cpu_share=_median(c.proxy_cpu_seconds / c.wrk.seconds for c in group if c.wrk.seconds),
                load_cpu_share=_median(c.load_cpu_seconds / c.wrk.seconds for c in group if c.wrk.seconds),
                core_busy=busy,
                failures=sum(c.wrk.errors + c.wrk.non_2xx for c in group),
            )
        )
    return result


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}" if value < 0 else f"{value:.2f}"


def other_cores(row: Row) -> float:
    """Cores busy with work that is not the benchmark's (other users of a shared machine), during a cell."""
    return max(0.0, sum(row.core_busy) - row.proxy_cpu_share - row.load_cpu_share)


def noise_warning(table: list[Row], nice: int) -> str:
    """A loud line when other work used a noticeable share of the machine while cells ran."""
    if not table:
        return ""
    other = statistics.median(other_cores(r) for r in table)
    if other < 0.2:
        return f"Other load on the machine during cells: median {other:.2f} cores (quiet enough)."
    advice = "Rerun on a quiet machine." if nice else "Rerun on a quiet machine or with `--nice -10`."
    return (
        f"**Other work used a median {other:.2f} cores while cells ran** (the benchmark ran at nice {nice}): "
        f"absolute numbers are inflated and noisy; ratios and CPU µs/req are less affected. {advice}"
    )


def latency_table(table: list[Row]) -> str:
    lines = [
        "| contender | scenario | conc | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| proxy CPU µs/req | proxy CPU | wrk+backend CPU | other CPU | failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        other = other_cores(r)
        cpu = "—" if r.cpu_us_per_request is None else f"{r.cpu_us_per_request:.0f}"
        proxy = "—" if r.cpu_us_per_request is None else f"{r.proxy_cpu_share * 100:.0f}%"
        lines.append(
            f"| {r.contender} | {r.scenario} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {_ms(r.added_p50_ms)} | {_ms(r.added_p99_ms)} | {cpu} | {proxy} "
            f"| {r.load_cpu_share * 100:.0f}% | {other * 100:.0f}% | {r.failures} |"
        )
    return "\n".join(lines)


def max_rps(table: list[Row], contender: str, scenario: str) -> float:
    values = [r.rps for r in table if r.contender == contender and r.scenario == scenario]
    return max(values) if values else float("nan")


def _added(table: list[Row], contender: str, scenario: str, concurrency: int) -> float | None:
    return next(
        (
            r.added_p50_ms
            for r in table
            if (r.contender, r.scenario, r.concurrency) == (contender, scenario, concurrency)
        ),
        None,
    )


def per_cpu_rps(table: list[Row], contender: str, scenario: str) -> float:
    """Requests per CPU-second of the proxy (1e6 / CPU µs per request), best cell: what one whole core would
    serve. Less sensitive than req/s to other load on a shared machine, blind to time spent waiting."""
    values = [
        1e6 / r.cpu_us_per_request
        for r in table
        if r.contender == contender and r.scenario == scenario and r.cpu_us_per_request
    ]
    return max(values) if values else float("nan")


def summary_table(table: list[Row], contenders: list[str], rss: dict[str, tuple[int, int]]) -> str:
    lines = [
        "| contender | max req/s json | max req/s sse | req/CPU-s json | req/CPU-s sse "
        "| added p50 ms c=1 json | added p50 ms c=1 sse | RSS idle MiB | RSS peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in contenders:
        idle, peak = rss.get(name, (0, 0))
        head = f"| {name} | {max_rps(table, name, 'json'):,.0f} | {max_rps(table, name, 'sse'):,.0f} | "
        if name == "direct":
            lines.append(head + "— | — | — | — | — | — |")
            continue
        lines.append(
            head + f"{per_cpu_rps(table, name, 'json'):,.0f} | {per_cpu_rps(table, name, 'sse'):,.0f} | "
            f"{_ms(_added(table, name, 'json', 1))} | {_ms(_added(table, name, 'sse', 1))} | "
            f"{idle / MIB:.0f} | {peak / MIB:.0f} |"
        )
    return "\n".join(lines)


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else float("inf")


@dataclass(frozen=True)
class Change:
    """A contender's change against a reference: the median over same-round pairs, a 95% confidence
    interval for that median, and how many pairs it rests on."""

    median: float
    low: float
    high: float
    pairs: int


def median_interval(values: Sequence[float], z: float = 1.96) -> Change:
    """The median of ``values`` and its distribution-free confidence interval: the order statistics at
    ranks n/2 -+ z*sqrt(n)/2 (the normal approximation to the binomial count of values below the median).
    Written by hand: it is three lines, and the bench must not need scipy. Below 8 values the interval is
    the whole range (too few pairs to narrow it)."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return Change(float("nan"), float("nan"), float("nan"), 0)
    half = z * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half))
    return Change(statistics.median(ordered), ordered[low], ordered[high], n)


def paired_change(
    cells: Sequence[Cell], contender: str, reference: str, scenario: str, measure: str = "rps"
) -> Change:
    """``contender``'s ``measure`` (``rps``: req/s; ``cpu``: the router's CPU time a request) relative to
    ``reference``'s in the same round, at the highest concurrency both ran: the median over rounds and its
    interval. Cells of one round run back to back, so each ratio compares two runs under nearly the same
    machine load; on a shared machine, where a whole round can run 30% slower than the next, this is
    steadier than a ratio of two medians."""

    def value(cell: Cell) -> float:
        return cell.wrk.rps if measure == "rps" else cell.cpu_per_request or 0.0

    def by_round(name: str) -> dict[tuple[int, int], float]:
        return {
            (c.concurrency, c.round): value(c) for c in cells if (c.contender, c.scenario) == (name, scenario)
        }

    ours, theirs = by_round(contender), by_round(reference)
    shared = ours.keys() & theirs.keys()
    if not shared:
        return median_interval([])
    top = max(concurrency for concurrency, _ in shared)
    changes = [ours[key] / theirs[key] - 1 for key in shared if key[0] == top and theirs[key] > 0]
    return median_interval(changes)


def goals(table: list[Row], contenders: list[str], cells: Sequence[Cell]) -> str:
    """The issue's goals for Flotilla, each with the measured value and PASS/MISS."""
    if "flotilla" not in contenders:
        return "Goals: not evaluated (flotilla was not measured)."
    lines = []
    added = _added(table, "flotilla", "json", 1)
    if added is not None:
        verdict = "PASS" if added <= 1.0 else "MISS"
        lines.append(f"- p50 added latency at c=1 (json) {added:.2f} ms, goal ≤ 1 ms: {verdict}")
    for scenario in ("json", "sse"):
        for other, goal in (("litellm", 3.0), ("vllm-router", 0.5)):
            if other in contenders:
                ratio = _ratio(max_rps(table, "flotilla", scenario), max_rps(table, other, scenario))
                per_cpu = _ratio(
                    per_cpu_rps(table, "flotilla", scenario), per_cpu_rps(table, other, scenario)
                )
                verdict = "PASS" if ratio >= goal else "MISS"
                lines.append(
                    f"- throughput flotilla/{other} ({scenario}): {ratio:.2f}x max req/s, {per_cpu:.2f}x per "
                    f"CPU-second (goal ≥ {goal}x): {verdict}"
                )
    if "flotilla-capture" in contenders:
        for scenario in ("json", "sse", "json-200tok"):
            base = max_rps(table, "flotilla", scenario)
            captured = max_rps(table, "flotilla-capture", scenario)
            if math.isfinite(base) and math.isfinite(captured):
                change = captured / base - 1
                paired = paired_change(cells, "flotilla-capture", "flotilla", scenario)
                cpu = paired_change(cells, "flotilla-capture", "flotilla", scenario, "cpu")
                verdict = "PASS" if paired.median >= -0.05 else "MISS"
                lines.append(
                    f"- capture's cost on throughput ({scenario}): {paired.median:+.1%} req/s, median of "
                    f"{paired.pairs} same-round pairs, 95% interval {paired.low:+.1%} to {paired.high:+.1%} "
                    f"({change:+.1%} max req/s; router CPU a request {cpu.median:+.1%}, "
                    f"{cpu.low:+.1%} to {cpu.high:+.1%}) (goal ≥ -5%): {verdict}"
                )
    return "\n".join(lines)
