"""Benchmark of the pure slot engine: `uv run python bench/bench_engine.py [--quick]`.

Scenario: one provider in America/New_York, March 2026 (31 days, with the spring-forward
day), weekly rules 09:00-17:00 every day, a 30-minute service on a 15-minute grid, and
2,000 busy intervals (5 to 30 minutes each, seeded random, day and night) in the window.
Times `compute_slots` with busy time handed over sorted (as a database `ORDER BY` would)
and shuffled, and prints median and p95 in milliseconds. Target: median under 5 ms (sorted
busy time, the case the service runs).
"""

import argparse
import random
import statistics
import sys
import time as clock
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from support import Report

from slotwise.scheduling import (
    BookingPolicy,
    Interval,
    ServiceSpec,
    WeeklyRule,
    compute_slots,
)

RUNS = 200
WARM_UP_RUNS = 20
QUICK_RUNS = 40
TARGET_MEDIAN_MS = 5.0
BUSY_COUNT = 2_000
ZONE = ZoneInfo("America/New_York")
START_DATE = date(2026, 3, 1)
END_DATE = date(2026, 3, 31)
WEEKLY = [WeeklyRule(day, time(9), time(17)) for day in range(7)]
SERVICE = ServiceSpec(duration=timedelta(minutes=30), interval=timedelta(minutes=15))
POLICY = BookingPolicy(min_notice=timedelta(hours=2), max_advance=timedelta(days=60))
NOW_AT = datetime(2026, 2, 28, 12, tzinfo=UTC)


def make_busy(rng: random.Random) -> list[Interval]:
    window_start_at = datetime(2026, 3, 1, 5, tzinfo=UTC)  # local midnight, EST
    window_minutes = 31 * 24 * 60 - 60  # March loses an hour
    busy = []
    for _ in range(BUSY_COUNT):
        start_at = window_start_at + timedelta(minutes=rng.randrange(window_minutes))
        busy.append(Interval(start_at, start_at + timedelta(minutes=rng.randint(5, 30))))
    return busy


def run_once(busy: Sequence[Interval]) -> int:
    slots = compute_slots(
        zone=ZONE,
        start_date=START_DATE,
        end_date=END_DATE,
        weekly=WEEKLY,
        busy=busy,
        service=SERVICE,
        policy=POLICY,
        now=NOW_AT,
    )
    return len(slots)


def measure(label: str, busy: Sequence[Interval], runs: int = RUNS) -> dict[str, float]:
    for _ in range(WARM_UP_RUNS):
        slot_count = run_once(busy)
    timings_ms = []
    for _ in range(runs):
        started = clock.perf_counter()
        run_once(busy)
        timings_ms.append((clock.perf_counter() - started) * 1000)
    timings_ms.sort()
    median_ms = statistics.median(timings_ms)
    p95_ms = timings_ms[int(len(timings_ms) * 0.95) - 1]
    print(
        f"{label:<16} median {median_ms:6.2f} ms   "
        f"p95 {p95_ms:6.2f} ms   min {timings_ms[0]:6.2f} ms   ({slot_count} slots)"
    )
    return {"median_ms": median_ms, "p95_ms": p95_ms, "min_ms": timings_ms[0], "slots": slot_count}


def run(*, quick: bool = False) -> dict[str, object]:
    """Measure the three cases; the summary row is the sorted case against the target."""
    runs = QUICK_RUNS if quick else RUNS
    rng = random.Random(20260301)
    busy = make_busy(rng)
    print(
        f"compute_slots: 31 days, {BUSY_COUNT} busy intervals, 30-min service every 15 min, "
        f"{runs} runs, Python {sys.version.split()[0]}"
    )
    cases = {
        "busy sorted": sorted(busy, key=lambda interval: interval.start_at),
        "busy shuffled": busy,
        "no busy time": [],
    }
    figures = {label: measure(label, case, runs) for label, case in cases.items()}
    report = Report("engine", details={"runs": runs, "cases": figures})
    sorted_case = figures["busy sorted"]
    report.add(
        "Slot engine, 31 days, 2,000 busy",
        "-",
        "median / p95 (busy sorted)",
        f"{sorted_case['median_ms']:.2f} / {sorted_case['p95_ms']:.2f} ms",
        f"median < {TARGET_MEDIAN_MS:g} ms",
        sorted_case["median_ms"] < TARGET_MEDIAN_MS,
    )
    shuffled = figures["busy shuffled"]
    report.add(
        "Slot engine, 31 days, 2,000 busy",
        "-",
        "median / p95 (busy shuffled)",
        f"{shuffled['median_ms']:.2f} / {shuffled['p95_ms']:.2f} ms",
    )
    return report.as_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark of the pure slot engine.")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs instead of {RUNS}")
    run(quick=parser.parse_args().quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
