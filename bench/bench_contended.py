"""Contended booking: `uv run python bench/bench_contended.py [--quick]`.

The realistic contention: a burst of clients for the same few slots (a popular provider
opening a day). Scenario, on SQLite and on PostgreSQL, one uvicorn worker each:

- One provider (America/New_York) working 09:00-17:00 every day, 30-minute sessions on a
  30-minute grid, no notice, no confirmation step.
- 200 signed-in clients (access tokens minted as `bench_booking.py` does), one keep-alive
  connection each, opened before the first round.
- Each round is a new day, 2 days ahead or later: its 10 slots from 09:00 to 13:30. When
  the round starts, every client tries all 10 slots, each in its own random order, back to
  back (`POST /api/v1/appointments/`): 2,000 attempts for 10 slots. Rounds follow each other.
- Checked: per round exactly 10 answers 201 (one per slot) and every other answer 409; the
  appointments in the database are counted against the 201s.
- Measured over all rounds: attempts/s, refusals/s (409s over the rounds' summed time, from
  the first attempt sent to the last answer), p50 and p99 of every attempt, the worker's CPU
  per attempt.

Targets (issue 17): exactly 10 bookings a round, every loser 409, p99 under 100 ms, on both
databases.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import loadgen
from bench_booking import count_appointments
from support import (
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
    measured_databases,
    seeding_session,
    uvicorn_server,
)

from slotwise.auth import tokens
from slotwise.auth.tokens import TokenType
from slotwise.config import Settings
from slotwise.models import User
from slotwise.users.models import Role

CLIENTS = 200
SLOTS = 10
TARGET_P99_MS = 100.0
FULL_ROUNDS = 5
QUICK_ROUNDS = 2


async def seed(url: str) -> tuple[SeededProvider, list[str]]:
    async with seeding_session(url) as session:
        provider = await add_provider(session, handle="bench-contended", interval_minutes=30)
        await session.commit()
    settings = Settings(_env_file=None, database_url=url, secret_key=SECRET_KEY)
    now = datetime.now(UTC)
    users = [
        User(
            id=uuid.uuid4(),
            email=f"bench-contender-{i:03d}@example.com",
            full_name=f"Contender {i}",
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
    minted = [
        tokens.issue(
            settings, user_id=user.id, session_id=uuid.uuid4(), token_type=TokenType.ACCESS, now=now
        ).token
        for user in users
    ]
    return provider, minted


def round_requests(
    provider: SeededProvider, access_tokens: list[str], day: int, rng: random.Random
) -> list[list[bytes]]:
    """Each client's 10 attempts of one round, in its own order."""
    on_date = datetime.now(provider.zone).date() + timedelta(days=2 + day)
    starts = [
        datetime.combine(on_date, datetime.min.time(), provider.zone)
        + timedelta(hours=9, minutes=30 * k)
        for k in range(SLOTS)
    ]
    per_client = []
    for token in access_tokens:
        order = starts[:]
        rng.shuffle(order)
        per_client.append(
            [
                loadgen.json_request(
                    "POST",
                    "/api/v1/appointments/",
                    {"provider_id": str(provider.id), "start_datetime": start.isoformat()},
                    headers={"Authorization": f"Bearer {token}"},
                )
                for start in order
            ]
        )
    return per_client


async def _attempts(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    requests: list[bytes],
    start: asyncio.Event,
    samples: list[tuple[float, int]],
    failures: list[str],
) -> None:
    reader, writer = connection
    await start.wait()
    for raw in requests:
        started = time.perf_counter()
        writer.write(raw)
        status, _head, body = await loadgen._read_response(reader)
        samples.append((time.perf_counter() - started, status))
        if status not in (201, 409) and len(failures) < 5:
            failures.append(f"{status} {body[:200]!r}")


async def _rounds(
    server: Server, rounds: list[list[list[bytes]]]
) -> tuple[list[tuple[float, int]], list[Counter[int]], float, list[str]]:
    connections = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(CLIENTS)]
    samples: list[tuple[float, int]] = []
    failures: list[str] = []
    per_round: list[Counter[int]] = []
    elapsed = 0.0
    try:
        for requests in rounds:
            start = asyncio.Event()
            before = len(samples)
            tasks = [
                asyncio.create_task(_attempts(connection, mine, start, samples, failures))
                for connection, mine in zip(connections, requests, strict=True)
            ]
            await asyncio.sleep(0.2)  # every client waiting on the start
            with loadgen.frozen_heap():
                began = time.perf_counter()
                start.set()
                await asyncio.gather(*tasks)
                elapsed += time.perf_counter() - began
            per_round.append(Counter(status for _, status in samples[before:]))
    finally:
        for _reader, writer in connections:
            writer.close()
    return samples, per_round, elapsed, failures


def measure_database(kind: str, rounds: int, report: Report) -> None:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    banner(f"contended booking on {label}")
    rng = random.Random(17)
    with bench_database(kind, "contended") as url:
        provider, access_tokens = asyncio.run(seed(url))
        plan = [round_requests(provider, access_tokens, day, rng) for day in range(rounds)]
        with uvicorn_server("slotwise.main:app_factory", url, label=f"slotwise-{kind}") as server:
            # A warm-up round on a day of its own, not measured.
            warm = round_requests(provider, access_tokens, rounds + 1, rng)
            asyncio.run(_rounds(server, [warm]))
            meter = CpuMeter(server.pid).start()
            samples, per_round, elapsed, failures = asyncio.run(_rounds(server, plan))
            cpu = meter.stop(len(samples))
        stored = asyncio.run(count_appointments(url)) - SLOTS  # the warm-up's are stored too
    latencies = sorted(latency for latency, _ in samples)
    statuses = Counter(status for _, status in samples)
    refusals = statuses.get(409, 0)
    exact = all(
        r.get(201, 0) == SLOTS and r.get(409, 0) == CLIENTS * SLOTS - SLOTS for r in per_round
    )
    p50 = loadgen.percentile(latencies, 0.50) * 1000
    p99 = loadgen.percentile(latencies, 0.99) * 1000
    print(
        f"{rounds} rounds of {CLIENTS} clients x {SLOTS} slots: {len(samples)} attempts in "
        f"{elapsed:.2f} s = {len(samples) / elapsed:,.0f}/s; refusals {refusals / elapsed:,.0f}/s; "
        f"p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {latencies[-1] * 1000:.1f} ms"
    )
    print(f"   by round: {[dict(r) for r in per_round]}; appointments stored: {stored}")
    print(
        f"   worker CPU {cpu['worker_cpu_ms_per_request']:.2f} ms/attempt; "
        f"machine CPU {cpu['machine_cpu_busy_pct']:.0f}% busy"
    )
    for failure in failures[:3]:
        print("   sample:", failure)
    name = f"Contended, {CLIENTS} clients x {SLOTS} slots"
    report.add(
        name,
        label,
        "201 / 409 / other per round",
        " ; ".join(
            f"{r.get(201, 0)} / {r.get(409, 0)} / {sum(r.values()) - r.get(201, 0) - r.get(409, 0)}"
            for r in per_round
        ),
        f"{SLOTS} / {CLIENTS * SLOTS - SLOTS} / 0",
        exact and stored == SLOTS * rounds,
    )
    report.add(
        name,
        label,
        "p99 (p50)",
        f"{p99:.1f} ms ({p50:.1f} ms)",
        f"< {TARGET_P99_MS:g} ms",
        p99 < TARGET_P99_MS,
    )
    report.add(
        name,
        label,
        "refusals/s (attempts/s)",
        f"{refusals / elapsed:,.0f} ({len(samples) / elapsed:,.0f})",
    )
    report.details[kind] = {
        "rounds": [dict(r) for r in per_round],
        "elapsed_s": elapsed,
        "p50_ms": p50,
        "p99_ms": p99,
        "refusals_per_s": refusals / elapsed,
        "stored": stored,
        "cpu": cpu,
        "failures": failures,
    }


def run(*, quick: bool = False, databases: tuple[str, ...] = DATABASES) -> dict[str, Any]:
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    loop_name = loadgen.install_uvloop()
    report = Report(
        "contended", details={"loop": loop_name, "started_at": datetime.now(UTC).isoformat()}
    )
    banner(f"contended booking ({'quick' if quick else 'full'}), load client on {loop_name}")
    for kind in measured_databases(databases, report):
        measure_database(kind, rounds, report)
    return report.as_dict()


def main() -> int:
    return command(run, "200 clients, the same 10 slots.", quick="2 rounds instead of 5")


if __name__ == "__main__":
    sys.exit(main())
