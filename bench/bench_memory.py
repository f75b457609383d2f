"""Memory of a uvicorn worker after a benchmark: `uv run python bench/bench_memory.py [--quick]`.

Reads VmRSS (resident set now) and VmHWM (its peak) from /proc/<pid>/status of the one
Slotwise worker of each HTTP benchmark, just before that worker is stopped: after the
slots benchmark (100k appointments in the database, every slot query done) and after the
booking benchmark (thousands of bookings). Target: VmRSS under 150 MB (10^6 bytes).

Run alone, it runs the slots and booking benchmarks first; run_all passes their results in.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import bench_booking
import bench_slots
from support import DATABASES, Report

TARGET_MB = 150.0
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Memory rows from the details of the slots and booking reports."""
    report = Report("memory")
    for bench_name, title in (("slots", "after slots benchmark"), ("booking", "after booking")):
        details = results.get(bench_name, {}).get("details", {})
        for kind in DATABASES:
            rss = details.get(kind, {}).get("rss_mb")
            if rss is None:
                continue
            report.add(
                f"Worker memory, {title}",
                LABELS[kind],
                "VmRSS (peak VmHWM)",
                f"{rss['VmRSS']:.0f} MB ({rss['VmHWM']:.0f} MB)",
                f"< {TARGET_MB:g} MB",
                rss["VmRSS"] < TARGET_MB,
            )
            report.details[f"{bench_name}/{kind}"] = rss
    for row in report.rows:
        print(f"{row.benchmark:<40} {row.database:<11} {row.value:<18} {row.status}")
    return report.as_dict()


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    results = {
        "slots": bench_slots.run(quick=quick, databases=databases),
        "booking": bench_booking.run(quick=quick, databases=databases),
    }
    return summarize(results)


def main() -> int:
    parser = argparse.ArgumentParser(description="Worker memory after the HTTP benchmarks.")
    parser.add_argument("--quick", action="store_true", help="small counts, a few seconds")
    parser.add_argument("--db", choices=DATABASES, action="append", help="default: both")
    args = parser.parse_args()
    run(quick=args.quick, databases=tuple(args.db or DATABASES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
