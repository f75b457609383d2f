"""Benchmark of booking seats of group sessions: `uv run python bench/bench_seats.py [--quick]`.

Scenario ``seats``, on SQLite and on PostgreSQL, one uvicorn worker each (issue 18: "20
clients filling sessions of capacity 20"):

- One provider (America/New_York, 09:00-17:00 every day, no notice, no confirmation step)
  with a 30-minute class of capacity 20 on a 30-minute grid: sessions back to back.
- The same 20 signed-in clients as bench_booking.py. Connection i is client i taking a seat in
  every session in time order, so the 20 connections fill each session together: every seat
  request races the other 19 for the same session's rows, and every answer should be 201
  (20 clients, 20 seats).
- The one-to-one load of bench_booking.py (20 providers, client i books provider i's free
  slots) in the same run, on the same database, on days before the classes' (so no client
  ever holds two overlapping appointments): the two loads take turns (bench_booking's
  rounds), so a slow phase of the machine falls on both alike.
- Measured: bookings/s, p50, p99 and the non-201 answers of each; afterwards every session
  in the database has at most 20 seats with distinct seat numbers, and the rows match the
  201s.

Targets: seat bookings at least half the one-to-one rate of the same run; no non-201 answer;
never more than 20 seats a session. The one-to-one figures are compared with bench_booking's
in docs/benchmarks.md (no regression).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import loadgen
from bench_booking import (
    CLIENTS,
    FULL,
    QUICK,
    Plan,
    _in_turns,
    add_clients,
    booking_requests,
    slot_starts,
)
from bench_booking import seed as seed_one_to_one
from sqlalchemy import func, select
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

from slotwise.models import Appointment
from slotwise.providers.models import Service

CAPACITY = CLIENTS  # 20 clients fill each session
SEAT_DAYS = 60  # of sessions: 60 * 16 = 960 sessions, 19,200 seats
TARGET_SHARE = 0.5


async def seed_class(url: str) -> tuple[SeededProvider, uuid.UUID]:
    async with seeding_session(url) as session:
        provider = await add_provider(session, handle="bench-class", interval_minutes=30)
        service = Service(
            id=uuid.uuid4(),
            provider_id=provider.id,
            name="Bench class",
            duration_minutes=30,
            slot_interval_minutes=30,
            capacity=CAPACITY,
        )
        session.add(service)
        await session.commit()
    return provider, service.id


def seat_requests(
    provider: SeededProvider, service_id: uuid.UUID, tokens: list[str], plan: Plan
) -> loadgen.RequestSource:
    """Client i asks for a seat in every session, in time order, after the one-to-one days."""
    first_date = datetime.now(provider.zone).date() + timedelta(days=plan.days + 4)
    starts = slot_starts(provider, first_date, SEAT_DAYS)
    per_client = [
        [
            loadgen.json_request(
                "POST",
                "/api/v1/appointments/",
                {
                    "provider_id": str(provider.id),
                    "service_id": str(service_id),
                    "start_datetime": start.isoformat(),
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            for start in starts
        ]
        for token in tokens
    ]
    return lambda index: iter(per_client[index])


async def seats_check(url: str, provider: SeededProvider) -> dict[str, int]:
    """The class's sessions as written: their count, the largest, and any with a seat number
    twice among the seats that take time."""
    async with seeding_session(url) as session:
        rows = (
            await session.execute(
                select(
                    func.count(),
                    func.count(func.distinct(Appointment.seat_no)),
                )
                .where(Appointment.provider_id == provider.id)
                .group_by(Appointment.session_key)
            )
        ).all()
        total = await session.scalar(select(func.count()).select_from(Appointment))
    return {
        "sessions": len(rows),
        "largest": max((n for n, _ in rows), default=0),
        "seat_numbers_twice": sum(1 for n, distinct in rows if n != distinct),
        "seats": sum(n for n, _ in rows),
        "appointments": int(total or 0),
    }


def measure_database(kind: str, plan: Plan, report: Report) -> None:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    banner(f"seats on {label}")
    with bench_database(kind, "seats") as url:
        providers = asyncio.run(seed_one_to_one(url))
        group, service_id = asyncio.run(seed_class(url))
        access_tokens = asyncio.run(add_clients(url))
        with uvicorn_server("slotwise.main:app_factory", url, label=f"slotwise-{kind}") as server:
            (seats, seats_cpu), (single, single_cpu) = _in_turns(
                [
                    (server, seat_requests(group, service_id, access_tokens, plan), "seats"),
                    (server, booking_requests(providers, access_tokens, plan.days), "one-to-one"),
                ],
                plan,
            )
        written = asyncio.run(seats_check(url, group))
    print(f"sessions written: {written}")
    created = seats.all_statuses.get("201", 0) + single.all_statuses.get("201", 0)
    non_201 = {
        name: sum(n for status, n in result.statuses.items() if status != "201") + result.errors
        for name, result in (("seats", seats), ("single", single))
    }
    share = seats.rps / single.rps if single.rps else 0.0
    name = f"Seats, {CLIENTS} clients, capacity {CAPACITY}"
    report.add(
        name,
        label,
        "bookings/s (p50 / p99)",
        f"{seats.rps:,.0f} ({seats.p50_ms:.1f} / {seats.p99_ms:.1f} ms)",
        f">= 1/2 one-to-one ({single.rps * TARGET_SHARE:,.0f}/s)",
        share >= TARGET_SHARE,
    )
    report.add(
        name,
        label,
        "non-201 answers",
        f"{non_201['seats']} of {seats.requests}",
        "0",
        non_201["seats"] == 0,
    )
    right = (
        written["largest"] <= CAPACITY
        and written["seat_numbers_twice"] == 0
        and written["seats"] == seats.all_statuses.get("201", 0)
        and written["appointments"] == created
    )
    report.add(
        name,
        label,
        "sessions (largest)",
        f"{written['sessions']} ({written['largest']} seats)",
        f"<= {CAPACITY} seats, rows = 201s",
        right,
    )
    report.add(
        f"Same run: one-to-one, {CLIENTS} clients",
        label,
        "bookings/s (p50 / p99)",
        f"{single.rps:,.0f} ({single.p50_ms:.1f} / {single.p99_ms:.1f} ms)",
        "no non-201",
        non_201["single"] == 0,
    )
    report.details[kind] = {
        "seats": seats.as_dict() | {"cpu": seats_cpu},
        "one_to_one": single.as_dict() | {"cpu": single_cpu},
        "share_of_one_to_one": share,
        "written": written,
    }
    if not right:
        raise RuntimeError(f"{label}: sessions written {written}, 201 answers {created}")


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    loop_name = loadgen.install_uvloop()
    report = Report(
        "seats", details={"loop": loop_name, "started_at": datetime.now(UTC).isoformat()}
    )
    banner(f"seats ({'quick' if quick else 'full'}), load client on {loop_name}")
    for kind in measured_databases(databases, report):
        measure_database(kind, plan, report)
    return report.as_dict()


def main() -> int:
    return command(run, "Benchmark of booking seats of group sessions.")


if __name__ == "__main__":
    sys.exit(main())
