"""Benchmark of booking a 52-occurrence series: `uv run python bench/bench_series.py [--quick]`.

Scenario ``series52``, on SQLite and on PostgreSQL, one uvicorn worker each: one provider
(America/New_York, 09:00-17:00 every day, 30-minute sessions on a 30-minute grid, no notice,
no confirmation step), one signed-in client. The client books, one request after another on
one connection, weekly series of 52 occurrences at distinct free times (each weekday and
half hour of the next week is a series of its own), every one all or nothing; every answer
should be 201 with 52 occurrences. Measured: p50 and p99 per request (after 3 warm-up
series, not counted).

Targets (issue 18): p50 under 50 ms on PostgreSQL, under 100 ms on SQLite.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from bench_booking import add_clients
from support import (
    DATABASES,
    Report,
    SeededProvider,
    add_provider,
    banner,
    bench_database,
    command,
    measured_databases,
    seeding_session,
    uvicorn_server,
)

WARMUP = 3
TARGET_MS = {"postgresql": 50.0, "sqlite": 100.0}


async def seed(url: str) -> SeededProvider:
    async with seeding_session(url) as session:
        provider = await add_provider(session, handle="bench-series", interval_minutes=30)
        await session.commit()
    return provider


def starts(provider: SeededProvider, count: int) -> list[str]:
    """Distinct free series starts: each half hour of each day of the coming week."""
    first: date = datetime.now(provider.zone).date() + timedelta(days=1)
    found = [
        datetime.combine(first + timedelta(days=d), time(9), provider.zone)
        + timedelta(minutes=30 * k)
        for d in range(7)
        for k in range(16)
    ]
    return [at.isoformat() for at in found[:count]]


async def _book(base_url: str, token: str, provider: SeededProvider, count: int) -> list[float]:
    timings: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for index, start in enumerate(starts(provider, count + WARMUP)):
            body = {"provider_id": str(provider.id), "start_datetime": start, "count": 52}
            began = clock.perf_counter()
            response = await client.post("/api/v1/appointments/series", json=body, headers=headers)
            elapsed = (clock.perf_counter() - began) * 1000
            if response.status_code != 201 or len(response.json()["occurrences"]) != 52:
                raise RuntimeError(f"series {start}: {response.status_code} {response.text[:300]}")
            if index >= WARMUP:
                timings.append(elapsed)
    return timings


def measure_database(kind: str, count: int, report: Report) -> None:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    banner(f"series52 on {label}")
    with bench_database(kind, "series") as url:
        provider = asyncio.run(seed(url))
        (token, *_) = asyncio.run(add_clients(url))
        with uvicorn_server("slotwise.main:app_factory", url, label=f"slotwise-{kind}") as server:
            timings = asyncio.run(_book(server.url, token, provider, count))
    timings.sort()
    p50 = statistics.median(timings)
    p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
    print(f"{label}: {len(timings)} series of 52, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    report.add(
        "Series of 52 occurrences, 1 client",
        label,
        "p50 / p99 per request",
        f"{p50:.1f} / {p99:.1f} ms",
        f"p50 < {TARGET_MS[kind]:g} ms",
        p50 < TARGET_MS[kind],
    )
    report.details[kind] = {"series": len(timings), "p50_ms": p50, "p99_ms": p99}


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    count = 10 if quick else 40
    report = Report("series", details={"started_at": datetime.now(UTC).isoformat()})
    for kind in measured_databases(databases, report):
        measure_database(kind, count, report)
    return report.as_dict()


def main() -> int:
    return command(run, "Benchmark of booking a 52-occurrence series.")


if __name__ == "__main__":
    sys.exit(main())
