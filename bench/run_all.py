"""Every benchmark, one summary: `uv run python bench/run_all.py [--quick | --smoke] [--db sqlite]`.

Full mode (about 8 minutes on 2 cores) gives the figures of docs/benchmarks.md and writes
bench/results/latest.json and latest.md. Quick mode (small counts, about 3 minutes) writes
latest-quick.json and latest-quick.md instead, so it never overwrites the figures; smoke
mode (CI's test) is quick mode with every load's window a quarter as long.

Exits 0 when every benchmark ran (missed targets are reported, not failures), 1 when one
crashed; with --strict, a missed target also exits 1. PostgreSQL parts are skipped, with
the reason, when no server answers at SLOTWISE_BENCH_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import bench_booking
import bench_browse
import bench_calendar_sync
import bench_contended
import bench_engine
import bench_memory
import bench_search
import bench_seats
import bench_series
import bench_slots
import bench_stream
import bench_teams
import loadgen
from support import (
    BENCH_DIR,
    DATABASES,
    Row,
    machine,
    markdown_table,
    postgres_version,
    wait_for_quiet,
)

RESULTS_DIR = BENCH_DIR / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every Slotwise benchmark.")
    parser.add_argument("--quick", action="store_true", help="small counts, for CI")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="quick mode with every load's window a quarter as long: proves that every "
        "benchmark runs (the CI test); its figures are not worth reading",
    )
    parser.add_argument("--db", choices=DATABASES, action="append", help="default: both")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a missed target")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        metavar="SECONDS",
        help="wait up to this long for other processes to leave the CPUs idle "
        "(default: 180 in full mode, 0 in quick mode)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.quick = True
        loadgen.WINDOW_SCALE = 0.25
    databases = tuple(args.db or DATABASES)
    wait_s = args.wait_quiet if args.wait_quiet is not None else (0 if args.quick else 180)
    busy_before = wait_for_quiet(wait_s)
    print(f"machine CPU {busy_before:.0f}% busy before the run")
    started = time.perf_counter()

    benchmarks: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("engine", lambda: bench_engine.run(quick=args.quick)),
        ("slots", lambda: bench_slots.run(quick=args.quick, databases=databases)),
        ("booking", lambda: bench_booking.run(quick=args.quick, databases=databases)),
        ("seats", lambda: bench_seats.run(quick=args.quick, databases=databases)),
        ("series", lambda: bench_series.run(quick=args.quick, databases=databases)),
        ("browse", lambda: bench_browse.run(quick=args.quick, databases=databases)),
        ("stream", lambda: bench_stream.run(quick=args.quick, databases=databases)),
        ("contended", lambda: bench_contended.run(quick=args.quick, databases=databases)),
        ("calendars", lambda: bench_calendar_sync.run(quick=args.quick, databases=databases)),
        ("search", lambda: bench_search.run(quick=args.quick, databases=databases)),
        ("teams", lambda: bench_teams.run(quick=args.quick, databases=databases)),
    ]
    results: dict[str, dict[str, Any]] = {}
    crashed: list[str] = []
    for name, bench in benchmarks:
        try:
            results[name] = bench()
        except Exception:
            traceback.print_exc()
            crashed.append(name)
    print()
    results["memory"] = bench_memory.summarize(results)

    rows = [
        Row(**{k: v for k, v in row.items() if k != "status"})
        for result in results.values()
        for row in result["rows"]
    ]
    pg = postgres_version()
    meta = {
        "date": datetime.now(UTC).date().isoformat(),
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "postgresql": pg,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "machine_cpu_busy_pct_before": busy_before,
        "crashed": crashed,
    }
    table = markdown_table(rows)
    heading = (
        f"Latest run: {meta['date']}, {meta['mode']} mode, {meta['machine']}, "
        f"PostgreSQL {pg or 'not available'}; {meta['elapsed_s']:.0f} s in all; "
        f"CPUs {busy_before:.0f}% busy with other work just before."
    )
    print(f"\n{heading}\n\n{table}\n")
    suffix = "-quick" if args.quick else ""
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"latest{suffix}.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2, default=str) + "\n"
    )
    (RESULTS_DIR / f"latest{suffix}.md").write_text(f"{heading}\n\n{table}\n")
    print(f"written: {RESULTS_DIR / f'latest{suffix}.json'} and .md")

    misses = [row for row in rows if row.passed is False]
    if crashed:
        print(f"crashed: {', '.join(crashed)}")
        return 1
    if misses:
        print(
            f"{len(misses)} target(s) missed: "
            + "; ".join(f"{row.benchmark} ({row.database}) {row.metric}" for row in misses)
        )
    return 1 if args.strict and misses else 0


if __name__ == "__main__":
    sys.exit(main())
