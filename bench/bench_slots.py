"""Benchmark of the slots endpoint over HTTP: `uv run python bench/bench_slots.py [--quick]`.

Scenario, on SQLite and on PostgreSQL, one uvicorn worker each:

- One provider (America/New_York) working 09:00-17:00 every day, a 30-minute session on a
  15-minute grid, no notice, bookable a year ahead; a 31-day window starting 7 days from
  today holding 2,000 active appointments, day and night as in the engine benchmark: each
  day 10 of 15 minutes at random quarter-hours within working hours, the rest (54-55) of
  10 minutes every 15 minutes through the night; a few hundred slots stay open. Other
  appointments lie outside that window: half on the same provider in the three years
  before it, half on 20 other providers.
- Sequential: GET /api/v1/providers/{handle}/slots?from=&to= (31 days) on one keep-alive
  connection, back to back -> median and p95 latency. Target: median < 15 ms with the
  slot cache off (issue 17).
- Concurrent: GET .../slots?date= (each request one of the 31 dates) on 32 connections
  -> requests/s, p50, p99. Targets: >= 2,000 requests/s per worker with the slot cache,
  >= 1,400 computed afresh (cache off, issue 17).
- Growth: the sequential 31-day query with 1k, 10k and 100k appointments outside the
  window (quick mode: 1k and 10k) -> the median stays flat (largest within 25% or 2 ms of
  the smallest). One database and one cache-off server per level, the same rows in each
  but those outside; the levels take turns (10 rounds) so that a slow phase of the
  machine falls on all of them alike. The sequential and concurrent cache-off figures are
  the 10k level's; the cache-on server runs on the 100k database.

The load client is bench/loadgen.py; its ceiling against a trivial asyncio server is
measured in the same run (and, with wrk installed, wrk's figure on the date query).
PostgreSQL gets ANALYZE after each seeding step, as autovacuum would give a live database;
SQLite is left as the app ships it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import loadgen
from support import (
    DATABASES,
    CpuMeter,
    Report,
    SeededProvider,
    Server,
    add_provider,
    analyze,
    appointment_row,
    banner,
    bench_database,
    command,
    insert_appointments,
    local_midnight,
    measure_client_ceiling,
    measured_databases,
    seeding_session,
    uvicorn_server,
    wrk,
)

WINDOW_DAYS = 31
IN_WINDOW = 2_000
WORKING_HOURS_PER_DAY = 10  # of the ~64.5 appointments a day in the window
OTHER_PROVIDERS = 20
CONNECTIONS = 32
TARGET_SEQUENTIAL_MS = 15.0  # issue 17; cache off
TARGET_RPS = 2_000.0
TARGET_COLD_RPS = 1_400.0  # issue 17: one date computed afresh
FLAT_RATIO, FLAT_SLACK_MS = 1.25, 2.0
ROUNDS = 10  # the growth levels take turns, this many times


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...]
    headline_level: int
    sequential_runs: int
    warmup_runs: int
    duration_s: float
    warmup_s: float


FULL = Plan((1_000, 10_000, 100_000), 10_000, 200, 20, 10.0, 2.0)
QUICK = Plan((1_000, 10_000), 10_000, 30, 5, 2.0, 0.5)


@dataclass
class Seeded:
    main: SeededProvider
    others: list[SeededProvider]
    first_date: date
    last_date: date
    window_start_at: datetime
    window_end_at: datetime
    outside: int = 0


async def seed_base(url: str) -> Seeded:
    async with seeding_session(url) as session:
        main = await add_provider(session, handle="bench-slots")
        others = [
            await add_provider(session, handle=f"bench-other-{k:02d}")
            for k in range(OTHER_PROVIDERS)
        ]
        first_date = datetime.now(main.zone).date() + timedelta(days=7)
        last_date = first_date + timedelta(days=WINDOW_DAYS - 1)
        seeded = Seeded(
            main,
            others,
            first_date,
            last_date,
            local_midnight(first_date, main.zone),
            local_midnight(last_date + timedelta(days=1), main.zone),
        )
        rows = in_window_rows(seeded)
        assert len(rows) == IN_WINDOW
        assert all(seeded.window_start_at <= r["start_at"] < seeded.window_end_at for r in rows)
        await insert_appointments(session, rows)
        await session.commit()
    return seeded


def night_starts(on_date: date, zone: ZoneInfo) -> list[datetime]:
    """Starts of the 10-minute night appointments of a local date, every 15 minutes of
    elapsed time from 00:02 until 09:00 and from 17:02 until midnight (DST-proof)."""
    midnight = local_midnight(on_date, zone)
    nine, five = (datetime.combine(on_date, time(hour), zone).astimezone(UTC) for hour in (9, 17))
    next_midnight = local_midnight(on_date + timedelta(days=1), zone)
    starts = []
    for begin, end in ((midnight, nine), (five, next_midnight)):
        start_at = begin + timedelta(minutes=2)
        while start_at + timedelta(minutes=10) <= end:
            starts.append(start_at)
            start_at += timedelta(minutes=15)
    return starts


def in_window_rows(seeded: Seeded) -> list[dict[str, Any]]:
    """2,000 appointments, 64 or 65 a day: day i % 31 holds the (i // 31)-th.

    The first 10 of a day take 15 minutes at that day's distinct random quarter-hours
    within working hours; the rest take 10 minutes through the night hours.
    """
    rng = random.Random(20260301)
    rows = []
    for day in range(WINDOW_DAYS):
        on_date = seeded.first_date + timedelta(days=day)
        quarters = rng.sample(range(32), WORKING_HOURS_PER_DAY)
        nights = night_starts(on_date, seeded.main.zone)
        nine = datetime.combine(on_date, time(9), seeded.main.zone).astimezone(UTC)
        for k in range(len(range(day, IN_WINDOW, WINDOW_DAYS))):
            if k < WORKING_HOURS_PER_DAY:
                start_at, length = nine + timedelta(minutes=15 * quarters[k]), 15
            else:
                start_at, length = nights[k - WORKING_HOURS_PER_DAY], 10
            key = f"window-{day}-{k}@example.com"
            rows.append(appointment_row(seeded.main, start_at, length, key))
    return rows


def _outside_row(seeded: Seeded, i: int) -> dict[str, Any]:
    """The i-th appointment outside the window: deterministic, never overlapping another."""
    key = f"outside-{i}@example.com"
    if i % 2 == 0:  # the main provider, in the years before the window
        start_at = (
            seeded.window_start_at - timedelta(days=3 * 365) + (i // 2) * timedelta(minutes=30)
        )
        if start_at >= seeded.window_start_at - timedelta(days=3):
            start_at += seeded.window_end_at - seeded.window_start_at + timedelta(days=6)
        return appointment_row(seeded.main, start_at, 25, key)
    provider = seeded.others[(i // 2) % OTHER_PROVIDERS]
    start_at = (
        seeded.window_start_at
        - timedelta(days=2 * 365)
        + (i // 2 // OTHER_PROVIDERS) * timedelta(hours=7)
    )
    return appointment_row(provider, start_at, 25, key)


async def top_up(url: str, seeded: Seeded, level: int, *, postgres: bool) -> None:
    async with seeding_session(url) as session:
        rows = [_outside_row(seeded, i) for i in range(seeded.outside, level)]
        await insert_appointments(session, rows)
        await session.commit()
        if postgres:
            await analyze(session)
            await session.commit()
    seeded.outside = level


def sequential(
    server: Server, path: str, runs: int, warmup_runs: int
) -> tuple[loadgen.LoadResult, dict[str, float]]:
    raw = loadgen.build_request("GET", path)
    asyncio.run(
        loadgen.run_load(
            server.url, loadgen.repeat(raw, warmup_runs), connections=1, duration_s=600
        )
    )
    meter = CpuMeter(server.pid).start()
    result = asyncio.run(
        loadgen.run_load(
            server.url, loadgen.repeat(raw, runs), connections=1, duration_s=600, label="31 days"
        )
    )
    return result, meter.stop(result.requests)


def one_date_concurrent(
    server: Server, seeded: Seeded, plan: Plan, *, label: str = "one date, concurrent"
) -> tuple[loadgen.LoadResult, dict[str, float], float | None]:
    """GET ...?date= on CONNECTIONS connections, each cycling through the window's dates."""
    path = f"/api/v1/providers/{seeded.main.handle}/slots?date="
    requests = [
        loadgen.build_request("GET", path + str(seeded.first_date + timedelta(days=d)))
        for d in range(WINDOW_DAYS)
    ]
    meter = CpuMeter(server.pid).start()
    result = asyncio.run(
        loadgen.run_load(
            server.url,
            loadgen.rotate(requests),
            connections=CONNECTIONS,
            duration_s=plan.duration_s,
            warmup_s=plan.warmup_s,
            label=label,
        )
    )
    cpu = meter.stop(sum(result.all_statuses.values()))
    print(result.line())
    print(
        f"   worker CPU {cpu['worker_cpu_ms_per_request']:.2f} ms/request; "
        f"machine CPU {cpu['machine_cpu_busy_pct']:.0f}% busy"
    )
    wrk_rps = None
    if plan is FULL and "cache off" not in label:
        wrk_rps = wrk(
            f"{server.url}{path}{seeded.first_date}", connections=CONNECTIONS, duration_s=5
        )
        if wrk_rps is not None:
            print(f"   wrk cross-check (one date, {CONNECTIONS} conn): {wrk_rps:,.0f} req/s")
    return result, cpu, wrk_rps


def sequential_in_turns(
    servers: list[Server], path: str, runs: int, warmup_runs: int
) -> list[tuple[loadgen.LoadResult, dict[str, float]]]:
    """``sequential`` on several servers at once, in turns: after each one's warm-up, rounds
    of a few requests on each in turn, so that a slow phase of this machine falls on every
    server alike (the growth levels were once measured one after the other, and a phase
    read as growth: docs/benchmarks.md)."""
    raw = loadgen.build_request("GET", path)
    for server in servers:
        asyncio.run(
            loadgen.run_load(
                server.url, loadgen.repeat(raw, warmup_runs), connections=1, duration_s=600
            )
        )
    per_round = -(-runs // ROUNDS)
    meters = [CpuMeter(server.pid).start() for server in servers]
    parts: list[list[loadgen.LoadResult]] = [[] for _ in servers]
    for _ in range(ROUNDS):
        for server, done in zip(servers, parts, strict=True):
            done.append(
                asyncio.run(
                    loadgen.run_load(
                        server.url,
                        loadgen.repeat(raw, per_round),
                        connections=1,
                        duration_s=600,
                        label="31 days",
                    )
                )
            )
    results = [loadgen.combine(done, "31 days") for done in parts]
    return [
        (result, meter.stop(result.requests)) for result, meter in zip(results, meters, strict=True)
    ]


def measure_database(kind: str, plan: Plan, report: Report) -> None:
    """First the computation (servers with their slot cache off: every request reads the
    database and runs the engine), one database per growth level, measured in turns; then
    the default server, whose cache answers repeats, on the largest."""
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    banner(f"slots on {label}")
    postgres = kind == "postgresql"
    with contextlib.ExitStack() as databases:
        urls = [
            databases.enter_context(bench_database(kind, f"slots_{level // 1000}k"))
            for level in plan.levels
        ]
        for url, level in zip(urls, plan.levels, strict=True):
            seeded = asyncio.run(seed_base(url))  # the same rows in each (a fixed seed)
            asyncio.run(top_up(url, seeded, level, postgres=postgres))
        window_path = (
            f"/api/v1/providers/{seeded.main.handle}/slots"
            f"?from={seeded.first_date}&to={seeded.last_date}"
        )
        with contextlib.ExitStack() as running:
            servers = [
                running.enter_context(
                    uvicorn_server(
                        "slotwise.main:app_factory",
                        url,
                        label=f"slotwise-{kind}-{level // 1000}k-cache-off",
                        env={"SLOTWISE_SLOT_CACHE_MB": "0"},
                    )
                )
                for url, level in zip(urls, plan.levels, strict=True)
            ]
            bodies = [asyncio.run(loadgen.fetch(server.url + window_path)) for server in servers]
            assert all(status == 200 for status, _ in bodies), bodies[0][1][:500]
            slot_counts = {len(json.loads(body)["slots"]) for _, body in bodies}
            assert len(slot_counts) == 1, slot_counts  # every level has the same window
            slot_count = slot_counts.pop()
            print(
                f"window {seeded.first_date}..{seeded.last_date}: {slot_count} open slots, "
                f"response {len(bodies[0][1]) / 1024:.0f} KiB; slot cache off, the levels "
                f"in turns ({ROUNDS} rounds):"
            )
            growth: dict[int, dict[str, float]] = {}
            measured = sequential_in_turns(
                servers, window_path, plan.sequential_runs, plan.warmup_runs
            )
            for level, (result, cpu) in zip(plan.levels, measured, strict=True):
                growth[level] = {
                    "median_ms": result.p50_ms,
                    "p95_ms": result.p95_ms,
                    "requests": result.requests,
                    **cpu,
                }
                print(
                    f"{level:>7,} outside + {IN_WINDOW:,} inside: 31-day median "
                    f"{result.p50_ms:6.2f} ms  p95 {result.p95_ms:6.2f} ms  "
                    f"({result.requests} requests, {result.statuses}); worker CPU "
                    f"{cpu['worker_cpu_ms_per_request']:.1f} ms/request"
                )
            headline_server = servers[plan.levels.index(plan.headline_level)]
            cold, cold_cpu, _ = one_date_concurrent(
                headline_server, seeded, plan, label="one date, concurrent, cache off"
            )
        print("slot cache on (the default):")
        with uvicorn_server(
            "slotwise.main:app_factory", urls[-1], label=f"slotwise-{kind}"
        ) as server:
            warm, warm_cpu = sequential(server, window_path, plan.sequential_runs, plan.warmup_runs)
            print(
                f"31-day, cached: median {warm.p50_ms:6.2f} ms  p95 {warm.p95_ms:6.2f} ms; "
                f"worker CPU {warm_cpu['worker_cpu_ms_per_request']:.2f} ms/request"
            )
            concurrent, concurrent_cpu, wrk_rps = one_date_concurrent(server, seeded, plan)
            rss = server.rss_mb()
            print(f"worker RSS after the run: {rss['VmRSS']:.0f} MB (peak {rss['VmHWM']:.0f} MB)")
    headline = growth[plan.headline_level]
    name = f"Slots, 31 days, 1 conn ({plan.headline_level // 1000}k outside), cache off"
    report.add(
        name,
        label,
        "median / p95",
        f"{headline['median_ms']:.1f} / {headline['p95_ms']:.1f} ms",
        f"median < {TARGET_SEQUENTIAL_MS:g} ms",
        headline["median_ms"] < TARGET_SEQUENTIAL_MS,
    )
    report.add(
        "Slots, 31 days, 1 conn, cached",
        label,
        "median / p95",
        f"{warm.p50_ms:.2f} / {warm.p95_ms:.2f} ms",
        "reference",
        None,
    )
    report.add(
        f"Slots, one date, {CONNECTIONS} conn",
        label,
        "req/s (p50 / p99)",
        f"{concurrent.rps:,.0f} ({concurrent.p50_ms:.1f} / {concurrent.p99_ms:.1f} ms)",
        f">= {TARGET_RPS:,.0f} req/s",
        concurrent.rps >= TARGET_RPS and concurrent.not_ok == 0 and concurrent.errors == 0,
    )
    report.add(
        f"Slots, one date, {CONNECTIONS} conn, cache off",
        label,
        "req/s (p50 / p99)",
        f"{cold.rps:,.0f} ({cold.p50_ms:.1f} / {cold.p99_ms:.1f} ms)",
        f">= {TARGET_COLD_RPS:,.0f} req/s",
        cold.rps >= TARGET_COLD_RPS and cold.not_ok == 0 and cold.errors == 0,
    )
    smallest, largest = growth[plan.levels[0]], growth[plan.levels[-1]]
    flat = largest["median_ms"] <= max(
        smallest["median_ms"] * FLAT_RATIO, smallest["median_ms"] + FLAT_SLACK_MS
    )
    report.add(
        "Slots growth, 31 days, 1 conn, cache off",
        label,
        "median at " + " / ".join(f"{level // 1000}k" for level in plan.levels),
        " / ".join(f"{growth[level]['median_ms']:.1f}" for level in plan.levels) + " ms",
        "flat (<= +25% or +2 ms)",
        flat,
    )
    report.details[kind] = {
        "window": [str(seeded.first_date), str(seeded.last_date)],
        "open_slots_in_window": slot_count,
        "growth_cache_off": {str(k): v for k, v in growth.items()},
        "cached_31_days": warm.as_dict() | {"cpu": warm_cpu},
        "concurrent": concurrent.as_dict() | {"cpu": concurrent_cpu},
        "concurrent_cache_off": cold.as_dict() | {"cpu": cold_cpu},
        "wrk_one_date_rps": wrk_rps,
        "rss_mb": rss,
    }


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    loop_name = loadgen.install_uvloop()
    report = Report(
        "slots", details={"loop": loop_name, "started_at": datetime.now(UTC).isoformat()}
    )
    banner(f"slots endpoint ({'quick' if quick else 'full'}), load client on {loop_name}")
    measure_client_ceiling(
        report,
        connections=CONNECTIONS,
        duration_s=min(plan.duration_s, 3.0),
        warmup_s=plan.warmup_s,
    )
    for kind in measured_databases(databases, report):
        measure_database(kind, plan, report)
    return report.as_dict()


def main() -> int:
    return command(run, "Benchmark of the slots endpoint.")


if __name__ == "__main__":
    sys.exit(main())
