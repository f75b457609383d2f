"""The cross-process race storm, bounded (bench/race_storm.py's quick plan).

Slotwise runs as real uvicorn processes (4 workers on PostgreSQL, 2 sharing one SQLite file)
under a few hundred concurrent bookings, cancellations, reschedules, holds and waitlist joins
aimed at a few providers' busiest hours. No two active appointments may overlap afterwards,
no session may hold more seats than its capacity, no freed place may go to two waiters, and
no request may end in a server error. The negative control runs the same storm against a
deliberately unguarded check-then-insert and must find overlaps: proof that the storm can
catch them.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.long

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def race_storm() -> ModuleType:
    # bench/ is a directory of scripts, not a package: its modules import each other by name.
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module("race_storm")


def _require_database(race_storm: ModuleType, kind: str) -> None:
    if kind != "postgresql":
        return
    reason = race_storm.postgres_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI must run the PostgreSQL storm: {reason}")
    pytest.skip(reason)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_storm_leaves_no_overlap_and_no_server_error(race_storm: ModuleType, kind: str) -> None:
    _require_database(race_storm, kind)
    result = race_storm.run_storm(kind, race_storm.QUICK)
    report = race_storm.format_report(result)
    print(report)
    tally, verdict = result.tally, result.verdict

    # The storm was a storm: hundreds of requests, every kind of change went through.
    assert result.attempts >= 300, report
    assert tally.successes["book"] > 0, report
    assert tally.successes["cancel"] > 0, report
    assert tally.attempts["reschedule"] > 0, report
    assert tally.successes["hold"] > 0, report  # holds taken, and booked with their tokens
    assert tally.successes["book_held"] > 0, report
    assert tally.successes["join"] > 0, report  # waitlists joined, while others cancelled
    assert result.refusals_by_code["409 slot_unavailable"] > 0, report

    assert (verdict.provider_pairs, verdict.client_pairs) == (0, 0), report
    # Group sessions took seats, never more than their capacity (how many were refused as
    # full depends on which booking wins a session's time first: reported, not asserted).
    assert verdict.seats > 0, report
    assert verdict.over_capacity == 0, report
    assert verdict.python_pairs == (0, 0), report
    assert tally.server_errors == 0, report  # 503 database_unavailable is allowed
    assert tally.transport_errors == 0, report
    assert verdict.told_mismatches == [], report
    # Every place the waitlist handed over went to one waiter, as theirs (the overlap and
    # capacity counts above include the waiters' bookings and offers' holds).
    assert verdict.waiting["booked"] + verdict.waiting["offered"] > 0, report  # places handed
    assert verdict.given_twice == 0, report
    assert verdict.hand_mismatches == [], report


def test_negative_control_storm_catches_overlaps(race_storm: ModuleType) -> None:
    result = race_storm.run_storm("sqlite", race_storm.QUICK, unguarded=True)
    report = race_storm.format_report(result)
    print(report)
    # The same storm, the same counting query: without a guard it finds double bookings.
    assert result.verdict.provider_pairs > 0, report
    assert result.verdict.python_pairs[0] == result.verdict.provider_pairs, report
