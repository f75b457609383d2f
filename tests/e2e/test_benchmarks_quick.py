"""The benchmarks' CI version: every benchmark runs end to end in quick mode, its load windows
a quarter as long (``--smoke``).

Figures are not judged here (a shared CI machine is no place to time things; the targets
are checked by the full run in docs/benchmarks.md): this proves they all still run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.long

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_runs_in_quick_mode() -> None:
    env = dict(os.environ)
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # run_all exits 1 when a benchmark crashed (a missed target alone is not a failure here).
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for benchmark in (
        "| Slot engine",
        "| Slots, one date",
        "| Booking, 20 clients",
        "| Seats, 20 clients, capacity 20",
        "| Series of 52 occurrences",
        "| Worker memory",
        "| Browse and book",
        "| Contended, 200 clients",
        "| Live listings",
        "| Calendar sync, 5,000 events",
        "| Slots, 31 days, 2,000 appointments + 3 calendars",
        "| Search, 50 providers",
        "| Team round robin, 20 clients",
    ):
        assert benchmark in result.stdout, benchmark
