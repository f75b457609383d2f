"""A busy provider browsed and booked at once: `uv run python bench/bench_browse.py [--quick]`.

The case that matters when a popular provider opens their calendar: clients look at the
days being booked while others book them, and every booking changes the listings the
others are about to read.

Scenario, on SQLite and on PostgreSQL, one uvicorn worker each (default settings: the slot
cache on):

- One provider (America/New_York) working 09:00-17:00 every day, 30-minute sessions on a
  30-minute grid (16 slots a day), no notice, no confirmation step, bookable a year ahead;
  each variant below has a provider and 20 clients of its own, so the second never runs out
  of free slots and its clients hold no times of the first's.
- 20 signed-in clients (access tokens minted as `bench_booking.py` does), one keep-alive
  connection each. Client i's k-th booking takes the (20k + i)-th slot of the provider's
  grid from 2 days ahead, so every booking is a distinct free slot, no client ever holds
  two overlapping appointments, and the 20 clients book the same day or two at any time.
- **browse and book**: each client, for every booking, first lists the day it is about to
  book 4 times (`GET /api/v1/providers/{handle}/slots?date=`), then books it
  (`POST /api/v1/appointments/`): 80% listings, 20% bookings.
- **with cancellations and reschedules**: 80% listings, 15% bookings, 4% cancellations
  (`POST /api/v1/appointments/{id}/cancel`, the client's latest booking) and 1% reschedules
  (`POST /api/v1/appointments/{id}/reschedule`, the client's latest booking moved to its next
  free slot); each preceded by 4 listings of the day it changes.
- Measured over the window (after a warm-up): requests/s in all, and per kind requests/s,
  p50 and p99; non-2xx answers (there should be none); the worker's CPU per request.

Targets (issue 17): at least 1,500 requests/s in all, listings' p99 at most 25 ms, bookings'
p99 at most 50 ms, on both databases.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import loadgen
from bench_booking import add_clients
from support import (
    DATABASES,
    CpuMeter,
    Report,
    SeededProvider,
    Server,
    add_provider,
    banner,
    bench_database,
    command,
    measured_databases,
    seeding_session,
    uvicorn_server,
)

CLIENTS = 20
LISTINGS_PER_CHANGE = 4
SLOTS_PER_DAY = 16
DAYS = 360  # the provider books 365 days ahead
TARGET_RPS = 1_500.0
TARGET_LISTING_P99_MS = 25.0
TARGET_BOOKING_P99_MS = 50.0
# What each client does after its 4 listings, in turn: 20% of requests change the calendar.
BROWSE_AND_BOOK = ("book",)
# 15 bookings, 4 cancellations, 1 reschedule in every 20 changes (80/15/4/1 with listings).
WITH_CHANGES = ("book", "book", "book", "cancel") * 4 + ("book", "book", "book", "reschedule")
KINDS = ("listing", "book", "cancel", "reschedule")


@dataclass(frozen=True)
class Plan:
    duration_s: float
    warmup_s: float


FULL = Plan(duration_s=10.0, warmup_s=2.0)
QUICK = Plan(duration_s=3.0, warmup_s=1.0)


@dataclass
class Client:
    """One signed-in client: the slots it books next, the appointments it holds."""

    index: int
    token: str
    provider_id: str
    grid: list[datetime]
    booked: int = 0  # how many grid slots it has taken
    held: list[tuple[str, datetime]] = field(default_factory=list)  # (id, start), oldest first

    def next_start(self) -> datetime | None:
        position = self.booked * CLIENTS + self.index
        self.booked += 1
        return self.grid[position] if position < len(self.grid) else None


@dataclass
class Recorder:
    samples: list[tuple[str, float, float, int]] = field(default_factory=list)  # kind, end, s, st
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    exhausted: bool = False


def grid(provider: SeededProvider) -> list[datetime]:
    first_date = datetime.now(provider.zone).date() + timedelta(days=2)
    return [
        datetime.combine(first_date + timedelta(days=day), datetime.min.time(), provider.zone)
        + timedelta(hours=9, minutes=30 * k)
        for day in range(DAYS)
        for k in range(SLOTS_PER_DAY)
    ]


async def _exchange(
    connection: list[Any], host: str, port: int, raw: bytes
) -> tuple[int, bytes, float]:
    reader, writer = connection
    started = time.perf_counter()
    writer.write(raw)
    try:
        status, _head, body = await loadgen._read_response(reader)
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        writer.close()
        connection[:] = await asyncio.open_connection(host, port)
        raise
    return status, body, started


async def _client(
    client: Client,
    changes: tuple[str, ...],
    server: Server,
    handle: str,
    deadline: float,
    recorder: Recorder,
) -> None:
    host, port = "127.0.0.1", server.port
    connection = list(await asyncio.open_connection(host, port))
    auth = {"Authorization": f"Bearer {client.token}"}
    step = 0
    try:
        while time.perf_counter() < deadline:
            change = changes[step % len(changes)]
            step += 1
            if change in ("cancel", "reschedule") and not client.held:
                change = "book"
            target: datetime | None
            if change == "cancel":
                appointment_id, target = client.held.pop()
                raw = loadgen.json_request(
                    "POST", f"/api/v1/appointments/{appointment_id}/cancel", {}, headers=auth
                )
            else:
                target = client.next_start()
                if target is None:
                    recorder.exhausted = True
                    return
                if change == "book":
                    raw = loadgen.json_request(
                        "POST",
                        "/api/v1/appointments/",
                        {"provider_id": client.provider_id, "start_datetime": target.isoformat()},
                        headers=auth,
                    )
                else:
                    appointment_id, _ = client.held[-1]
                    raw = loadgen.json_request(
                        "POST",
                        f"/api/v1/appointments/{appointment_id}/reschedule",
                        {"new_start_time": target.isoformat()},
                        headers=auth,
                    )
            day = target.astimezone(client.grid[0].tzinfo).date()
            listing = loadgen.build_request("GET", f"/api/v1/providers/{handle}/slots?date={day}")
            for kind, request in [("listing", listing)] * LISTINGS_PER_CHANGE + [(change, raw)]:
                try:
                    status, body, started = await _exchange(connection, host, port, request)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                    recorder.errors += 1
                    recorder.error_samples.append(f"{kind}: {exc.__class__.__name__}: {exc}")
                    continue
                finished = time.perf_counter()
                recorder.samples.append((kind, finished, finished - started, status))
                if status >= 400:
                    if len(recorder.error_samples) < 5:
                        recorder.error_samples.append(f"{kind} {status} {body[:200]!r}")
                    continue
                if kind == "book":
                    client.held.append((json.loads(body)["id"], target))
                elif kind == "reschedule":
                    client.held[-1] = (client.held[-1][0], target)
    finally:
        connection[1].close()


async def _load(
    clients: list[Client], changes: tuple[str, ...], server: Server, handle: str, plan: Plan
) -> tuple[dict[str, loadgen.LoadResult], loadgen.LoadResult, Recorder]:
    recorder = Recorder()
    with loadgen.frozen_heap():  # first: its collection is no part of the window
        started = time.perf_counter()
        window_start = started + plan.warmup_s
        deadline = window_start + plan.duration_s
        await asyncio.gather(
            *(_client(client, changes, server, handle, deadline, recorder) for client in clients)
        )
    window_end = min(deadline, time.perf_counter())
    window = max(window_end - window_start, 1e-9)
    per_kind: dict[str, loadgen.LoadResult] = {}
    in_window = [s for s in recorder.samples if window_start <= s[1] <= window_end]
    for kind in (*KINDS, "all"):
        chosen = [s for s in in_window if kind in ("all", s[0])]
        statuses = Counter(str(s[3]) for s in chosen)
        per_kind[kind] = loadgen._figures(
            kind,
            len(clients),
            window,
            sorted(s[2] for s in chosen),
            statuses,
            statuses,
            errors=0,
            samples=[],
        )
    return per_kind, per_kind.pop("all"), recorder


VARIANTS = (
    ("browse and book", BROWSE_AND_BOOK),
    ("with cancellations and reschedules", WITH_CHANGES),
)


async def seed(url: str) -> list[SeededProvider]:
    """A provider of its own for each variant: the first variant books thousands of the
    grid's slots, which the second must not run out of."""
    async with seeding_session(url) as session:
        providers = [
            await add_provider(session, handle=f"bench-browse-{n}", interval_minutes=30)
            for n in range(len(VARIANTS))
        ]
        await session.commit()
    return providers


def measure_database(kind: str, plan: Plan, report: Report) -> None:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    banner(f"browse and book on {label}")
    with bench_database(kind, "browse") as url:
        providers = asyncio.run(seed(url))
        details: dict[str, Any] = {}
        with uvicorn_server("slotwise.main:app_factory", url, label=f"slotwise-{kind}") as server:
            for n, ((variant, changes), provider) in enumerate(
                zip(VARIANTS, providers, strict=True)
            ):
                # Clients of its own too: the first variant's still hold their times.
                tokens = asyncio.run(add_clients(url, prefix=f"bench-browse-{n}-client"))
                slots = grid(provider)
                clients = [
                    Client(i, token, str(provider.id), slots) for i, token in enumerate(tokens)
                ]
                meter = CpuMeter(server.pid).start()
                per_kind, total, recorder = asyncio.run(
                    _load(clients, changes, server, provider.handle, plan)
                )
                cpu = meter.stop(len(recorder.samples))
                _print(variant, total, per_kind, cpu, recorder)
                _add_rows(report, label, variant, total, per_kind)
                details[variant] = {
                    "all": total.as_dict(),
                    **{k: v.as_dict() for k, v in per_kind.items()},
                    "cpu": cpu,
                    "transport_errors": recorder.errors,
                    "error_samples": recorder.error_samples,
                    "grid_exhausted": recorder.exhausted,
                }
        report.details[kind] = details


def _print(
    variant: str,
    total: loadgen.LoadResult,
    per_kind: dict[str, loadgen.LoadResult],
    cpu: dict[str, float],
    recorder: Recorder,
) -> None:
    print(f"{variant}:")
    print("  " + total.line())
    for result in per_kind.values():
        if result.requests:
            print("  " + result.line())
    print(
        f"   worker CPU {cpu['worker_cpu_ms_per_request']:.2f} ms/request; "
        f"machine CPU {cpu['machine_cpu_busy_pct']:.0f}% busy"
    )
    if recorder.exhausted:
        print("   note: a client ran out of free slots before the deadline")
    for sample in recorder.error_samples[:3]:
        print("   sample:", sample)


def _add_rows(
    report: Report,
    label: str,
    variant: str,
    total: loadgen.LoadResult,
    per_kind: dict[str, loadgen.LoadResult],
) -> None:
    listing, booking = per_kind["listing"], per_kind["book"]
    name = f"Browse and book, {CLIENTS} clients" + (
        "" if variant == "browse and book" else ", 80/15/4/1"
    )
    report.add(
        name,
        label,
        "req/s in all",
        f"{total.rps:,.0f}",
        f">= {TARGET_RPS:,.0f}/s",
        total.rps >= TARGET_RPS,
    )
    report.add(
        name,
        label,
        "listings p99 (req/s)",
        f"{listing.p99_ms:.1f} ms ({listing.rps:,.0f}/s)",
        f"<= {TARGET_LISTING_P99_MS:g} ms",
        listing.p99_ms <= TARGET_LISTING_P99_MS,
    )
    report.add(
        name,
        label,
        "bookings p99 (bookings/s)",
        f"{booking.p99_ms:.1f} ms ({booking.rps:,.0f}/s)",
        f"<= {TARGET_BOOKING_P99_MS:g} ms",
        booking.p99_ms <= TARGET_BOOKING_P99_MS,
    )
    report.add(
        name,
        label,
        "non-2xx answers",
        f"{total.not_ok} of {total.requests}",
        "0",
        total.not_ok == 0,
    )


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    loop_name = loadgen.install_uvloop()
    report = Report(
        "browse", details={"loop": loop_name, "started_at": datetime.now(UTC).isoformat()}
    )
    banner(f"browse and book ({'quick' if quick else 'full'}), load client on {loop_name}")
    for kind in measured_databases(databases, report):
        measure_database(kind, plan, report)
    return report.as_dict()


def main() -> int:
    return command(run, "A busy provider browsed and booked at once.")


if __name__ == "__main__":
    sys.exit(main())
