"""Benchmark of a search across providers: `uv run python bench/bench_search.py [--quick]`.

Scenario, on SQLite and on PostgreSQL, one uvicorn worker each:

- 50 providers of the specialty searched for ("Mathematics") and 50 of another, each in one
  of five zones (New York, London, Madrid, Tokyo, Guayaquil), working 09:00-17:00 every day,
  30-minute sessions on a 15-minute grid, no notice, bookable a year ahead. Each of the 50
  has 6 booked half hours on every day in and around the searched week (random, a fixed
  seed).
- The search: GET /api/v1/slots/search?specialty=Mathematics&from=D&to=D+6&limit=20 (the
  week starting tomorrow, the first page), on one keep-alive connection, back to back.
- Cached: the default server, whose slot cache keeps the 50 listings after the first
  search (and applies bookings to them) -> p50 and p95. Target: p50 < 50 ms.
- Cold: a server with its slot cache off (SLOTWISE_SLOT_CACHE_MB=0): every search
  computes the 50 listings from the database, each one statement (the busy time and the
  rules version; the providers' hours are kept per worker as for any listing) and the
  engine -> p50 and p95. Target: p50 < 150 ms.
- For reference: the first search of a fresh worker with the cache on (nothing kept, the
  50 providers' hours read too), once per database.
- Suggestions: GET /api/v1/providers/{handle}/slots/suggestions over the same week, one of
  the 50 providers, anonymous, from the cache (the default server) -> p50 and p95.
  Target: p50 < 10 ms.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import loadgen
from sqlalchemy import update
from support import (
    DATABASES,
    CpuMeter,
    Report,
    SeededProvider,
    add_provider,
    analyze,
    appointment_row,
    banner,
    bench_database,
    command,
    insert_appointments,
    measured_databases,
    seeding_session,
    uvicorn_server,
)

from slotwise.models import Provider

MATCHING = 50
OTHERS = 50
DAYS = 7
BOOKED_PER_DAY = 6
ZONES = ("America/New_York", "Europe/London", "Europe/Madrid", "Asia/Tokyo", "America/Guayaquil")
TARGET_CACHED_MS = 50.0
TARGET_COLD_MS = 150.0
TARGET_SUGGESTIONS_MS = 10.0
RUNS = {False: (200, 10), True: (20, 3)}  # measured, warm-up: full and quick mode


async def seed(url: str, *, postgres: bool) -> date:
    """The providers and their bookings; the first date searched (tomorrow in UTC)."""
    rng = random.Random(20260421)
    first = datetime.now(UTC).date() + timedelta(days=1)
    async with seeding_session(url) as session:
        matching: list[SeededProvider] = []
        for k in range(MATCHING + OTHERS):
            provider = await add_provider(
                session, handle=f"bench-search-{k:03d}", zone=ZONES[k % len(ZONES)]
            )
            specialty = "Mathematics" if k < MATCHING else "Chemistry"
            await session.execute(
                update(Provider).where(Provider.id == provider.id).values(specialty=specialty)
            )
            if k < MATCHING:
                matching.append(provider)
        rows = []
        for provider in matching:
            for day in range(-1, DAYS + 1):
                on_date = first + timedelta(days=day)
                nine = datetime.combine(on_date, time(9), provider.zone).astimezone(UTC)
                for half in rng.sample(range(16), BOOKED_PER_DAY):
                    start_at = nine + timedelta(minutes=30 * half)
                    key = f"{provider.handle}-{on_date}-{half}@example.com"
                    rows.append(appointment_row(provider, start_at, 30, key))
        await insert_appointments(session, rows)
        await session.commit()
        if postgres:
            await analyze(session)
            await session.commit()
    return first


def timed(server_url: str, path: str, runs: int, label: str = "search") -> loadgen.LoadResult:
    """``runs`` searches, one after another on one connection."""
    raw = loadgen.build_request("GET", path)
    return asyncio.run(
        loadgen.run_load(
            server_url, loadgen.repeat(raw, runs), connections=1, duration_s=600, label=label
        )
    )


def measure_database(kind: str, quick: bool, report: Report) -> None:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    banner(f"search across providers on {label}")
    runs, warmup = RUNS[quick]
    with bench_database(kind, "search") as url:
        first = asyncio.run(seed(url, postgres=kind == "postgresql"))
        last = first + timedelta(days=DAYS - 1)
        path = f"/api/v1/slots/search?specialty=Mathematics&from={first}&to={last}&limit=20"
        figures: dict[str, Any] = {}
        with uvicorn_server("slotwise.main:app_factory", url, label=f"search-{kind}") as server:
            fresh = timed(server.url, path, 1, "first search")
            status, body = asyncio.run(loadgen.fetch(server.url + path))
            assert status == 200, body[:500]
            answer = json.loads(body)
            assert answer["providers"] == MATCHING, answer["providers"]
            assert len(answer["items"]) == 20, answer
            assert answer["next_cursor"], answer
            timed(server.url, path, warmup)
            meter = CpuMeter(server.pid).start()
            cached = timed(server.url, path, runs)
            cached_cpu = meter.stop(cached.requests)
            suggest_path = (
                f"/api/v1/providers/bench-search-000/slots/suggestions?from={first}&to={last}"
            )
            timed(server.url, suggest_path, warmup)
            suggested = timed(server.url, suggest_path, runs, "suggestions")
        with uvicorn_server(
            "slotwise.main:app_factory",
            url,
            label=f"search-{kind}-cache-off",
            env={"SLOTWISE_SLOT_CACHE_MB": "0"},
        ) as server:
            timed(server.url, path, warmup)
            meter = CpuMeter(server.pid).start()
            cold = timed(server.url, path, runs)
            cold_cpu = meter.stop(cold.requests)
    for name, result, cpu in (("cached", cached, cached_cpu), ("cold", cold, cold_cpu)):
        print(
            f"{name:>6}: p50 {result.p50_ms:6.2f} ms  p95 {result.p95_ms:6.2f} ms  "
            f"({result.requests} requests, {result.statuses}); worker CPU "
            f"{cpu['worker_cpu_ms_per_request']:.1f} ms/request"
        )
        figures[name] = result.as_dict() | {"cpu": cpu}
    print(f" fresh worker's first search: {fresh.p50_ms:.1f} ms")
    print(f" suggestions, one provider, 7 days, cached: p50 {suggested.p50_ms:.2f} ms")
    figures["suggestions"] = suggested.as_dict()
    figures["first_search_ms"] = fresh.p50_ms
    report.add(
        f"Search, {MATCHING} providers, 7 days, cached",
        label,
        "p50 / p95",
        f"{cached.p50_ms:.1f} / {cached.p95_ms:.1f} ms",
        f"p50 < {TARGET_CACHED_MS:g} ms",
        cached.p50_ms < TARGET_CACHED_MS and cached.not_ok == 0,
    )
    report.add(
        f"Search, {MATCHING} providers, 7 days, cache off",
        label,
        "p50 / p95",
        f"{cold.p50_ms:.1f} / {cold.p95_ms:.1f} ms",
        f"p50 < {TARGET_COLD_MS:g} ms",
        cold.p50_ms < TARGET_COLD_MS and cold.not_ok == 0,
    )
    report.add(
        "Suggestions, 1 provider, 7 days, cached",
        label,
        "p50 / p95",
        f"{suggested.p50_ms:.1f} / {suggested.p95_ms:.1f} ms",
        f"p50 < {TARGET_SUGGESTIONS_MS:g} ms",
        suggested.p50_ms < TARGET_SUGGESTIONS_MS and suggested.not_ok == 0,
    )
    report.add(
        f"Search, {MATCHING} providers, fresh worker's first",
        label,
        "one request",
        f"{fresh.p50_ms:.0f} ms",
        "reference",
        None,
    )
    report.details[kind] = figures


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    loop_name = loadgen.install_uvloop()
    report = Report(
        "search", details={"loop": loop_name, "started_at": datetime.now(UTC).isoformat()}
    )
    banner(f"search across providers ({'quick' if quick else 'full'})")
    for kind in measured_databases(databases, report):
        measure_database(kind, quick, report)
    return report.as_dict()


def main() -> int:
    return command(run, "Benchmark of a search across providers.")


if __name__ == "__main__":
    sys.exit(main())
