"""Benchmark of round-robin team bookings: `uv run python bench/bench_teams.py [--quick]`.

Scenario, on PostgreSQL (the target's) and on SQLite (for reference), one uvicorn worker:

- 10 teams of 4 members each (40 providers, America/New_York, 09:00-17:00 every day, no
  notice, no confirmation step), each team with a round-robin service of 30 minutes on a
  30-minute grid.
- 20 signed-in clients (tokens minted as bench_booking's). Clients 2k and 2k+1 book team k,
  the same times in the same order (its free half hours from 2 days ahead on), so every
  time of a team is booked by two clients at once: the round robin's race at full load,
  which must give them two different members. Every answer should be 201.
- POST /api/v1/teams/{handle}/appointments on 20 keep-alive connections, after a warm-up
  -> bookings/s, p50, p99, non-201 answers; then the database: no member holds two
  bookings at one time, and the rows match the 201s.

Target (issue 21): at least 500 bookings/s on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import loadgen
from bench_booking import CLIENTS, add_clients
from sqlalchemy import func, select
from support import (
    DATABASES,
    CpuMeter,
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

from slotwise.models import Appointment, Provider, Service, Team, TeamMember, TeamService
from slotwise.teams.models import TeamMode

TEAMS = 10
MEMBERS = 4
SLOTS_PER_DAY = 16
TARGET_PG_RPS = 500.0


@dataclass(frozen=True)
class Plan:
    days: int
    duration_s: float
    warmup_s: float


FULL = Plan(days=60, duration_s=8.0, warmup_s=2.0)
QUICK = Plan(days=8, duration_s=2.0, warmup_s=0.5)


@dataclass(frozen=True)
class SeededTeam:
    handle: str
    service_id: str
    members: list[SeededProvider]


async def seed(url: str) -> list[SeededTeam]:
    now = datetime.now(UTC)
    teams = []
    async with seeding_session(url) as session:
        for k in range(TEAMS):
            members = [
                await add_provider(
                    session,
                    handle=f"bench-team-{k:02d}-{m}",
                    session_minutes=30,
                    interval_minutes=30,
                )
                for m in range(MEMBERS)
            ]
            owner_id = await session.scalar(
                select(Provider.user_id).where(Provider.id == members[0].id)
            )
            team = Team(public_handle=f"bench-team-{k:02d}", name=f"Team {k}", owner_id=owner_id)
            team.created_at = team.updated_at = now
            session.add(team)
            await session.flush()
            offered = TeamService(
                team_id=team.id,
                name="Round robin call",
                mode=TeamMode.ROUND_ROBIN,
                duration_minutes=30,
                buffer_before_minutes=0,
                buffer_after_minutes=0,
                slot_interval_minutes=30,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
            session.add(offered)
            await session.flush()
            for member in members:
                session.add(
                    TeamMember(
                        team_id=team.id,
                        provider_id=member.id,
                        priority=0,
                        weight=1,
                        created_at=now,
                        updated_at=now,
                    )
                )
                session.add(
                    Service(
                        provider_id=member.id,
                        team_service_id=offered.id,
                        name=offered.name,
                        duration_minutes=30,
                        buffer_before_minutes=0,
                        buffer_after_minutes=0,
                        slot_interval_minutes=30,
                        capacity=1,
                        is_active=True,
                        created_at=now,
                        updated_at=now,
                    )
                )
            await session.flush()
            teams.append(SeededTeam(team.public_handle, str(offered.id), members))
        await session.commit()
    return teams


def starts(zone: Any, first_date: date, days: int) -> list[datetime]:
    return [
        datetime.combine(first_date + timedelta(days=d), time(9), zone) + timedelta(minutes=30 * k)
        for d in range(days)
        for k in range(SLOTS_PER_DAY)
    ]


def requests(teams: list[SeededTeam], tokens: list[str], days: int) -> loadgen.RequestSource:
    zone = teams[0].members[0].zone
    first_date = datetime.now(zone).date() + timedelta(days=2)
    times = starts(zone, first_date, days)
    per_client = [
        [
            loadgen.json_request(
                "POST",
                f"/api/v1/teams/{team.handle}/appointments",
                {"service_id": team.service_id, "start_datetime": at.isoformat()},
                headers={"Authorization": f"Bearer {token}"},
            )
            for at in times
        ]
        for team, token in ((teams[i // 2], tokens[i]) for i in range(CLIENTS))
    ]
    return lambda index: iter(per_client[index])


async def check(url: str) -> tuple[int, int]:
    """Rows written, and (member, start) pairs held twice (must be 0)."""
    async with seeding_session(url) as session:
        rows = (await session.execute(select(Appointment.provider_id, Appointment.start_at))).all()
        written = int(await session.scalar(select(func.count()).select_from(Appointment)) or 0)
    doubled = sum(1 for count in Counter(rows).values() if count > 1)
    return written, doubled


def measure_database(kind: str, plan: Plan, report: Report) -> None:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    banner(f"team round-robin bookings on {label}")
    with bench_database(kind, "teams") as url:
        access_tokens = asyncio.run(add_clients(url, prefix="bench-team-client"))
        teams = asyncio.run(seed(url))
        with uvicorn_server("slotwise.main:app_factory", url, label=f"teams-{kind}") as server:
            meter = CpuMeter(server.pid).start()
            result = asyncio.run(
                loadgen.run_load(
                    server.url,
                    requests(teams, access_tokens, plan.days),
                    connections=CLIENTS,
                    duration_s=plan.duration_s,
                    warmup_s=plan.warmup_s,
                    label="team round robin",
                )
            )
            sent = sum(result.all_statuses.values())
            cpu = meter.stop(sent)
        written, doubled = asyncio.run(check(url))
    print(result.line())
    print(
        f"   worker CPU {cpu['worker_cpu_ms_per_request']:.2f} ms/request; machine CPU "
        f"{cpu['machine_cpu_busy_pct']:.0f}% busy; {written} rows for "
        f"{result.all_statuses.get('201', 0)} answers 201; {doubled} member times held twice"
    )
    for sample in result.error_samples[:3]:
        print("   sample:", sample)
    sound = (
        result.not_ok == 0
        and result.errors == 0
        and doubled == 0
        and written == result.all_statuses.get("201", 0)
    )
    postgres = kind == "postgresql"
    report.add(
        f"Team round robin, {CLIENTS} clients, {TEAMS} teams of {MEMBERS}",
        label,
        "bookings/s (p50 / p99)",
        f"{result.rps:,.0f} ({result.p50_ms:.1f} / {result.p99_ms:.1f} ms)",
        f">= {TARGET_PG_RPS:,.0f}/s, all 201" if postgres else "all 201",
        sound and (result.rps >= TARGET_PG_RPS or not postgres),
    )
    report.details[kind] = result.as_dict() | {
        "cpu": cpu,
        "rows": written,
        "doubled": doubled,
    }


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    loop_name = loadgen.install_uvloop()
    report = Report("teams", details={"loop": loop_name})
    banner(f"team round-robin bookings ({'quick' if quick else 'full'})")
    for kind in measured_databases(databases, report):
        measure_database(kind, plan, report)
    return report.as_dict()


def main() -> int:
    return command(run, "Benchmark of round-robin team bookings.")


if __name__ == "__main__":
    sys.exit(main())
