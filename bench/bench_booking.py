"""Benchmark of booking over HTTP: `uv run python bench/bench_booking.py [--quick]`.

Scenario, on SQLite and on PostgreSQL, one uvicorn worker each:

- 20 providers (America/New_York) working 09:00-17:00 every day, 30-minute sessions on a
  30-minute grid, no notice, no confirmation step (bookings are created confirmed).
- 20 signed-in clients (access tokens minted as auth/service.py does). Connection i is client
  i booking provider i's free slots in time order, from 2 days ahead on: every request
  POST /api/v1/appointments/ is a distinct free slot, and no client ever holds two
  overlapping appointments, so every answer should be 201.
- The floor, in the same run, on the same database: bench/floor_app.py (one INSERT per
  request, same engine settings) under the same load. Both servers run side by side and the
  two loads take turns (5 rounds of 2 s each, after a 2 s warm-up, then 0.5 s before each
  round): a slow phase of the machine falls on both alike.
- Measured: bookings/s, p50, p99 and the count of non-201 answers over the rounds' windows;
  afterwards the appointments in the database are counted against the 201s. Then the
  trivial route GET /ping of the floor app and loadgen's static server (the client's
  ceiling), both with 20 connections.

Targets: bookings/s at least half the floor's rate (both databases); at least 1,200
bookings/s on PostgreSQL and 800 on SQLite (issue 17), p99 under 50 ms on both; no non-201
answer.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import loadgen
from sqlalchemy import func, select
from support import (
    BENCH_DIR,
    DATABASES,
    SECRET_KEY,
    CpuMeter,
    Report,
    SeededProvider,
    Server,
    add_provider,
    banner,
    bench_database,
    command,
    measure_client_ceiling,
    measured_databases,
    seeding_session,
    uvicorn_server,
)

from slotwise.auth import tokens
from slotwise.auth.tokens import TokenType
from slotwise.config import Settings
from slotwise.models import Appointment, User
from slotwise.users.models import Role

CLIENTS = 20
SLOTS_PER_DAY = 16  # 09:00 to 16:30, every 30 minutes
TARGET_FLOOR_SHARE = 0.5
TARGET_RPS = {"postgresql": 1_200.0, "sqlite": 800.0}  # issue 17
TARGET_P99_MS = 50.0


@dataclass(frozen=True)
class Plan:
    days: int  # of free slots per client: days * 16
    duration_s: float  # measured, per load, over all its rounds
    warmup_s: float  # before a load's first round
    ceiling_s: float
    rounds: int  # the booking and the floor loads take turns, this many windows each


FULL = Plan(days=120, duration_s=10.0, warmup_s=2.0, ceiling_s=3.0, rounds=5)
QUICK = Plan(days=12, duration_s=2.0, warmup_s=0.5, ceiling_s=1.0, rounds=2)
REWARM_S = 0.5  # before each later round: connections opened again, the first answers left out


async def seed(url: str) -> list[SeededProvider]:
    async with seeding_session(url) as session:
        providers = [
            await add_provider(session, handle=f"bench-book-{i:02d}", interval_minutes=30)
            for i in range(CLIENTS)
        ]
        await session.commit()
    return providers


async def add_clients(url: str, *, prefix: str = "bench-client") -> list[str]:
    """CLIENTS client accounts (``prefix``-NN@example.com), signed in: access tokens minted as
    auth/service.py does.

    (Logging in through the API would only add 20 argon2 hashes to the set-up; the token
    path a booking runs - decode, denylist check, user load - is the same.)
    """
    settings = Settings(_env_file=None, database_url=url, secret_key=SECRET_KEY)
    now = datetime.now(UTC)
    users = [
        User(
            id=uuid.uuid4(),
            email=f"{prefix}-{i:02d}@example.com",
            full_name=f"Client {i}",
            role=Role.CLIENT,
            hashed_password="!",
            created_at=now,
            updated_at=now,
        )
        for i in range(CLIENTS)
    ]
    async with seeding_session(url) as session:
        session.add_all(users)
        await session.commit()
    return [
        tokens.issue(
            settings, user_id=user.id, session_id=uuid.uuid4(), token_type=TokenType.ACCESS, now=now
        ).token
        for user in users
    ]


def slot_starts(provider: SeededProvider, first_date: date, days: int) -> list[datetime]:
    return [
        datetime.combine(first_date + timedelta(days=d), time(9), provider.zone)
        + timedelta(minutes=30 * k)
        for d in range(days)
        for k in range(SLOTS_PER_DAY)
    ]


def booking_requests(
    providers: list[SeededProvider], tokens: list[str], days: int
) -> loadgen.RequestSource:
    first_date = datetime.now(providers[0].zone).date() + timedelta(days=2)
    per_client = [
        [
            loadgen.json_request(
                "POST",
                "/api/v1/appointments/",
                {"provider_id": str(provider.id), "start_datetime": start.isoformat()},
                headers={"Authorization": f"Bearer {token}"},
            )
            for start in slot_starts(provider, first_date, days)
        ]
        for provider, token in zip(providers, tokens, strict=True)
    ]
    return lambda index: iter(per_client[index])


def floor_requests(providers: list[SeededProvider], days: int) -> loadgen.RequestSource:
    first_date = datetime.now(providers[0].zone).date() + timedelta(days=2)
    per_connection = [
        [
            loadgen.json_request(
                "POST",
                "/floor/insert",
                {"provider_id": str(provider.id), "start_datetime": start.isoformat()},
            )
            for start in slot_starts(provider, first_date, days)
        ]
        for provider in providers
    ]
    return lambda index: iter(per_connection[index])


async def count_appointments(url: str) -> int:
    async with seeding_session(url) as session:
        return int(await session.scalar(select(func.count()).select_from(Appointment)) or 0)


def _load(
    server: Server, source: loadgen.RequestSource, duration_s: float, warmup_s: float, label: str
) -> tuple[loadgen.LoadResult, dict[str, float]]:
    meter = CpuMeter(server.pid).start()
    result = asyncio.run(
        loadgen.run_load(
            server.url,
            source,
            connections=CLIENTS,
            duration_s=duration_s,
            warmup_s=warmup_s,
            label=label,
        )
    )
    sent = sum(result.all_statuses.values())
    cpu = meter.stop(sent) | {"worker_s": meter.worker_s, "sent": sent}
    return result, cpu


def _report(result: loadgen.LoadResult, cpu: dict[str, float]) -> None:
    print(result.line())
    print(
        f"   worker CPU {cpu['worker_cpu_ms_per_request']:.2f} ms/request; "
        f"machine CPU {cpu['machine_cpu_busy_pct']:.0f}% busy"
    )
    for sample in result.error_samples[:3]:
        print("   sample:", sample)


def _in_turns(
    loads: list[tuple[Server, loadgen.RequestSource, str]], plan: Plan
) -> list[tuple[loadgen.LoadResult, dict[str, float]]]:
    """Each load in turn, ``plan.rounds`` times, for an equal share of ``plan.duration_s``:
    this machine's speed drifts by phases of minutes (docs/benchmarks.md), and a phase now
    falls on the booking and on its floor alike. Each connection's requests go on where its
    last round left them."""
    window = plan.duration_s / plan.rounds
    sources = [loadgen.resumable(source) for _, source, _ in loads]
    parts: list[list[tuple[loadgen.LoadResult, dict[str, float]]]] = [[] for _ in loads]
    for round_number in range(plan.rounds):
        warmup = plan.warmup_s if round_number == 0 else REWARM_S
        for (server, _, label), source, done in zip(loads, sources, parts, strict=True):
            done.append(_load(server, source, window, warmup, label))
    combined = []
    for (_, _, label), done in zip(loads, parts, strict=True):
        result = loadgen.combine([result for result, _ in done], label)
        worker_s = sum(cpu["worker_s"] for _, cpu in done)
        sent = sum(cpu["sent"] for _, cpu in done)
        cpu = {
            "worker_cpu_ms_per_request": round(worker_s * 1000 / max(sent, 1), 3),
            "machine_cpu_busy_pct": round(
                sum(cpu["machine_cpu_busy_pct"] for _, cpu in done) / len(done), 1
            ),
        }
        _report(result, cpu)
        print(f"   by round: {', '.join(f'{part.rps:,.0f}/s' for part, _ in done)}")
        combined.append((result, cpu))
    return combined


def measure_database(kind: str, plan: Plan, report: Report) -> None:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    banner(f"booking on {label}")
    with bench_database(kind, "booking") as url:
        providers = asyncio.run(seed(url))
        access_tokens = asyncio.run(add_clients(url))
        with (
            uvicorn_server("slotwise.main:app_factory", url, label=f"slotwise-{kind}") as server,
            uvicorn_server(
                "floor_app:app_factory",
                url,
                label=f"floor-{kind}",
                ready_path="/ping",
                app_dir=BENCH_DIR,
            ) as floor_server,
        ):
            (booked, booked_cpu), (floor, floor_cpu) = _in_turns(
                [
                    (server, booking_requests(providers, access_tokens, plan.days), "bookings"),
                    (floor_server, floor_requests(providers, plan.days), "floor: one INSERT"),
                ],
                plan,
            )
            rss = server.rss_mb()
            print(f"worker RSS after the run: {rss['VmRSS']:.0f} MB (peak {rss['VmHWM']:.0f} MB)")
            trivial, trivial_cpu = _load(
                floor_server,
                loadgen.repeat(loadgen.build_request("GET", "/ping")),
                plan.ceiling_s,
                plan.warmup_s,
                "trivial route (floor GET /ping)",
            )
            _report(trivial, trivial_cpu)
        rows = asyncio.run(count_appointments(url))
        created = booked.all_statuses.get("201", 0)
        print(f"appointments in the database: {rows} (201 answers: {created})")
    non_201 = sum(n for status, n in booked.statuses.items() if status != "201") + booked.errors
    share = booked.rps / floor.rps if floor.rps else 0.0
    name = f"Booking, {CLIENTS} clients"
    report.add(
        name,
        label,
        "bookings/s (p50 / p99)",
        f"{booked.rps:,.0f} ({booked.p50_ms:.1f} / {booked.p99_ms:.1f} ms)",
        f">= 1/2 floor ({floor.rps * TARGET_FLOOR_SHARE:,.0f}/s)",
        share >= TARGET_FLOOR_SHARE,
    )
    report.add(
        name,
        label,
        "bookings/s",
        f"{booked.rps:,.0f}",
        f">= {TARGET_RPS[kind]:,.0f}/s",
        booked.rps >= TARGET_RPS[kind],
    )
    report.add(
        name,
        label,
        "p99",
        f"{booked.p99_ms:.1f} ms",
        f"< {TARGET_P99_MS:g} ms",
        booked.p99_ms < TARGET_P99_MS,
    )
    report.add(name, label, "non-201 answers", f"{non_201} of {booked.requests}", "0", non_201 == 0)
    report.add(
        f"Floor: one INSERT, {CLIENTS} conn",
        label,
        "req/s (p50 / p99)",
        f"{floor.rps:,.0f} ({floor.p50_ms:.1f} / {floor.p99_ms:.1f} ms)",
    )
    report.add(
        f"Trivial route, {CLIENTS} conn",
        label,
        "req/s (p50 / p99)",
        f"{trivial.rps:,.0f} ({trivial.p50_ms:.1f} / {trivial.p99_ms:.1f} ms)",
    )
    report.details[kind] = {
        "bookings": booked.as_dict() | {"cpu": booked_cpu},
        "floor": floor.as_dict() | {"cpu": floor_cpu},
        "trivial_route": trivial.as_dict() | {"cpu": trivial_cpu},
        "share_of_floor": share,
        "appointments_in_db": rows,
        "rows_match_201s": rows == created,
        "rss_mb": rss,
    }
    if rows != created:
        raise RuntimeError(f"{label}: {rows} appointments in the database, {created} answers 201")


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    loop_name = loadgen.install_uvloop()
    report = Report(
        "booking", details={"loop": loop_name, "started_at": datetime.now(UTC).isoformat()}
    )
    banner(f"booking ({'quick' if quick else 'full'}), load client on {loop_name}")
    measure_client_ceiling(
        report, connections=CLIENTS, duration_s=plan.ceiling_s, warmup_s=plan.warmup_s
    )
    for kind in measured_databases(databases, report):
        measure_database(kind, plan, report)
    return report.as_dict()


def main() -> int:
    return command(run, "Benchmark of booking throughput.")


if __name__ == "__main__":
    sys.exit(main())
