"""Benchmark of connected calendars: `uv run python bench/bench_calendar_sync.py [--quick]`.

Scenario (issue 20's targets):

- **Sync**: an iCalendar file of 5,000 events, 200 of them weekly recurring (America/New_York,
  with their VTIMEZONE) and 4,800 single ones spread over the next 120 days, served by the
  standard library's HTTP server in a process of its own on loopback; a provider bookable
  365 days ahead. In process, one core:
  `external.sync.sync` (the fetch through the outbound guard, the expansion in its thread,
  the write of the busy time) timed for the first sync (every interval inserted), a sync of
  the file with 50 events moved (the difference written), and an unchanged sync (304 to
  If-Modified-Since). Target:
  the first sync under 2 s.
- **Listing**: bench_slots' provider (09:00-17:00 New York, 30 minutes every 15, 2,000
  appointments in a 31-day window) with 3 connected calendars, each holding 100 busy
  intervals (30-90 minutes) in the window. The engine: `compute_slots` over the 31 days with
  the 2,000 appointments and the calendars' merged busy time (median of runs; target 5 ms).
  HTTP: GET /providers/{handle}/slots?from=&to= (31 days) on one keep-alive connection,
  back to back, one uvicorn worker, the slot cache off (every listing computed) and on;
  target median under 25 ms with the cache off.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import time as clock
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_engine
import bench_slots
from sqlalchemy import insert
from support import (
    DATABASES,
    Report,
    add_provider,
    analyze,
    banner,
    bench_database,
    command,
    free_port,
    measured_databases,
    seeding_session,
    uvicorn_server,
)

from slotwise import scheduling
from slotwise.availability.models import CalendarBusy
from slotwise.db import Database
from slotwise.external.keys import CalendarKeys, new_key
from slotwise.external.models import ExternalCalendar, Kind, Standing, SyncStatus
from slotwise.external.sync import SyncPolicy, sync
from slotwise.outbound import Allowlist, OutboundGuard

EVENTS = 5_000
RECURRING = 200
CALENDARS = 3
BUSY_PER_CALENDAR = 100
TARGET_SYNC_S = 2.0
TARGET_ENGINE_MS = 5.0
TARGET_HTTP_MS = 25.0
ZONE_BLOCK = """BEGIN:VTIMEZONE\r
TZID:America/New_York\r
BEGIN:DAYLIGHT\r
TZOFFSETFROM:-0500\r
TZOFFSETTO:-0400\r
TZNAME:EDT\r
DTSTART:19700308T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r
END:DAYLIGHT\r
BEGIN:STANDARD\r
TZOFFSETFROM:-0400\r
TZOFFSETTO:-0500\r
TZNAME:EST\r
DTSTART:19701101T020000\r
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r
END:STANDARD\r
END:VTIMEZONE\r
"""


def calendar_file(today: datetime, *, moved: int = 0) -> bytes:
    """5,000 VEVENTs: 200 weekly (20 occurrences each), 4,800 single ones; ``moved`` of the
    single ones an hour later than in the first file."""
    rng = random.Random(20270301)
    parts = ["BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n", ZONE_BLOCK]
    for k in range(EVENTS):
        day = today + timedelta(days=rng.randrange(120))
        start = day.replace(hour=rng.randrange(7, 20), minute=rng.choice((0, 15, 30, 45)))
        if RECURRING <= k < RECURRING + moved:
            start += timedelta(hours=1)
        end = start + timedelta(minutes=rng.choice((30, 45, 60, 90)))
        stamp = "%Y%m%dT%H%M%S"
        lines = [
            "BEGIN:VEVENT",
            f"UID:bench-{k}@example.com",
            "DTSTAMP:20270101T000000Z",
            f"SUMMARY:Event {k}",
            f"DTSTART;TZID=America/New_York:{start:{stamp}}",
            f"DTEND;TZID=America/New_York:{end:{stamp}}",
        ]
        if k < RECURRING:
            lines.append("RRULE:FREQ=WEEKLY;COUNT=20")
        lines.append("END:VEVENT")
        parts.append("\r\n".join(lines) + "\r\n")
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts).encode()


@contextmanager
def served(files: dict[str, bytes]) -> Iterator[tuple[int, Callable[[str, bytes], None]]]:
    """The standard library's HTTP server in a process of its own (as a calendar's server
    is: not sharing this process's interpreter), serving a folder on loopback: Last-Modified
    with each file, 304 to If-Modified-Since. Yields its port and how to change a file."""
    folder = Path(tempfile.mkdtemp(prefix="slotwise-bench-ics-", dir="/tmp"))
    written = [0.0]

    def write(name: str, body: bytes) -> None:
        path = folder / name
        path.write_bytes(body)
        written[0] = max(written[0] + 2, time.time())  # a later second: a new Last-Modified
        os.utime(path, (written[0], written[0]))

    for name, body in files.items():
        write(name, body)
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, write
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


async def measure_sync(url: str, runs: int) -> dict[str, float]:
    keys = CalendarKeys([new_key()])
    guard = OutboundGuard(allowlist=Allowlist.parse(["127.0.0.1"]), allow_http=True)
    policy = SyncPolicy.of(
        guard=guard,
        keys=keys,
        max_bytes=10_000_000,
        sync_minutes=5,
        pause_after_hours=24,
        default_timezone="UTC",
    )
    now = datetime.now(UTC)
    today = now.astimezone(bench_slots.ZoneInfo("America/New_York")).replace(tzinfo=None)
    figures: dict[str, list[float]] = {"first": [], "changed": [], "unchanged": []}
    with served({"first.ics": calendar_file(today)}) as (port, write):
        for _ in range(runs):
            async with seeding_session(url) as session:
                provider = await add_provider(session, handle=f"sync-{uuid.uuid4().hex[:8]}")
                calendar_id = uuid.uuid4()
                session.add(
                    ExternalCalendar(
                        id=calendar_id,
                        provider_id=provider.id,
                        kind=Kind.ICS_URL,
                        host="127.0.0.1",
                        secret=keys.seal({"url": f"http://127.0.0.1:{port}/first.ics"}),
                        tentative_busy=True,
                        write_bookings=False,
                        status=Standing.ACTIVE,
                        due_at=now,
                        sync_status=SyncStatus.PENDING,
                        event_count=0,
                        created_at=now,
                    )
                )
                await session.commit()
            write("first.ics", calendar_file(today))
            db = Database(url, pool_size=2)
            try:
                for case, moved in (("first", 0), ("changed", 50), ("unchanged", 50)):
                    if case == "changed":
                        write("first.ics", calendar_file(today, moved=moved))
                    started = clock.perf_counter()
                    synced = await sync(db, calendar_id, policy=policy, now=now)
                    figures[case].append(clock.perf_counter() - started)
                    assert synced is not None
                    assert synced.sync_status == SyncStatus.OK, synced.last_error
                events = synced.event_count if synced else 0
            finally:
                await db.dispose()
    print(f"sync of {EVENTS} events ({RECURRING} recurring): {events} occurrences in the window")
    return {case: statistics.median(values) for case, values in figures.items()}


def calendar_busy(start_at: datetime, end_at: datetime) -> list[list[scheduling.Interval]]:
    """Each calendar's busy time in ``[start_at, end_at)``: 100 intervals of 30-90 minutes
    at random quarter-hours, merged."""
    rng = random.Random(20270302)
    quarters = int((end_at - start_at).total_seconds() // 900)
    calendars = []
    for _ in range(CALENDARS):
        busy = []
        for _ in range(BUSY_PER_CALENDAR):
            begin = start_at + timedelta(minutes=15 * rng.randrange(quarters))
            busy.append(
                scheduling.Interval(begin, begin + timedelta(minutes=rng.choice((30, 60, 90))))
            )
        calendars.append(scheduling.merge(busy))
    return calendars


def measure_engine(runs: int) -> dict[str, float]:
    """compute_slots over 31 days with 2,000 appointments and 3 calendars' busy time."""
    rng = random.Random(20260301)
    appointments = bench_engine.make_busy(rng)
    window_start_at = datetime(2026, 3, 1, 5, tzinfo=UTC)  # New York's midnights, March 2026
    window_end_at = datetime(2026, 4, 1, 4, tzinfo=UTC)
    extra = [one for busy in calendar_busy(window_start_at, window_end_at) for one in busy]
    busy = sorted([*appointments, *extra], key=lambda interval: interval.start_at)
    timings = []
    for k in range(runs + 20):
        started = clock.perf_counter()
        bench_engine.run_once(busy)
        if k >= 20:
            timings.append((clock.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "median_ms": statistics.median(timings),
        "p95_ms": timings[int(len(timings) * 0.95) - 1],
    }


async def seed_listing(url: str, *, postgres: bool) -> bench_slots.Seeded:
    seeded = await bench_slots.seed_base(url)
    now = datetime.now(UTC)
    async with seeding_session(url) as session:
        keys = CalendarKeys([new_key()])
        rows = []
        for k, intervals in enumerate(calendar_busy(seeded.window_start_at, seeded.window_end_at)):
            calendar_id = uuid.uuid4()
            session.add(
                ExternalCalendar(
                    id=calendar_id,
                    provider_id=seeded.main.id,
                    kind=Kind.ICS_URL,
                    name=f"Calendar {k}",
                    host="calendar.example.com",
                    secret=keys.seal({"url": f"https://calendar.example.com/{k}.ics"}),
                    tentative_busy=True,
                    write_bookings=False,
                    status=Standing.ACTIVE,
                    due_at=now + timedelta(days=1),
                    sync_status=SyncStatus.OK,
                    event_count=len(intervals),
                    created_at=now,
                )
            )
            rows += [
                {
                    "id": uuid.uuid4(),
                    "calendar_id": calendar_id,
                    "provider_id": seeded.main.id,
                    "start_at": one.start_at,
                    "end_at": one.end_at,
                }
                for one in intervals
            ]
        await session.flush()
        await session.execute(insert(CalendarBusy), rows)
        await session.commit()
        if postgres:
            await analyze(session)
            await session.commit()
    return seeded


def measure_database(kind: str, quick: bool, report: Report) -> None:
    runs = 1 if quick else 3
    with bench_database(kind, "calsync") as url:
        figures = asyncio.run(measure_sync(url, runs))
    print(
        f"{kind}: first sync {figures['first']:.2f} s, 50 moved {figures['changed']:.2f} s, "
        f"unchanged (304) {figures['unchanged'] * 1000:.0f} ms"
    )
    report.add(
        "Calendar sync, 5,000 events (200 recurring)",
        kind,
        "first / changed / unchanged",
        f"{figures['first']:.2f} / {figures['changed']:.2f} / {figures['unchanged']:.3f} s",
        f"first < {TARGET_SYNC_S:g} s",
        figures["first"] < TARGET_SYNC_S,
    )
    plan = bench_slots.QUICK if quick else bench_slots.FULL
    with bench_database(kind, "calslots") as url:
        seeded = asyncio.run(seed_listing(url, postgres=kind == "postgresql"))
        path = (
            f"/api/v1/providers/{seeded.main.handle}/slots"
            f"?from={seeded.first_date}&to={seeded.last_date}"
        )
        for cache_mb in ("0", "32"):
            label = f"{kind}, cache {'off' if cache_mb == '0' else 'on'}"
            with uvicorn_server(
                "slotwise.main:app_factory",
                url,
                label=label,
                env={"SLOTWISE_SLOT_CACHE_MB": cache_mb},
            ) as server:
                result, _cpu = bench_slots.sequential(
                    server, path, plan.sequential_runs, plan.warmup_runs
                )
            assert result.not_ok == 0, result.statuses
            print(f"31-day listing, 3 calendars, {label}: {result.line()}")
            report.add(
                "Slots, 31 days, 2,000 appointments + 3 calendars",
                kind,
                f"median / p95, cache {'off' if cache_mb == '0' else 'on'}",
                f"{result.p50_ms:.2f} / {result.p95_ms:.2f} ms",
                f"median < {TARGET_HTTP_MS:g} ms" if cache_mb == "0" else "reference",
                result.p50_ms < TARGET_HTTP_MS if cache_mb == "0" else None,
            )


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    report = Report("calendar_sync")
    banner(f"connected calendars ({'quick' if quick else 'full'})")
    engine = measure_engine(40 if quick else 200)
    print(
        f"engine, 31 days, 2,000 appointments + 3 calendars: median {engine['median_ms']:.2f} ms"
        f", p95 {engine['p95_ms']:.2f} ms"
    )
    report.add(
        "Slot engine, 31 days, 2,000 busy + 3 calendars",
        "-",
        "median / p95",
        f"{engine['median_ms']:.2f} / {engine['p95_ms']:.2f} ms",
        f"median < {TARGET_ENGINE_MS:g} ms",
        engine["median_ms"] < TARGET_ENGINE_MS,
    )
    for kind in measured_databases(databases, report):
        measure_database(kind, quick, report)
    return report.as_dict()


def main() -> int:
    return command(run, "Benchmark of connected calendars: a sync, and a listing with them.")


if __name__ == "__main__":
    sys.exit(main())
