"""Cross-process race storm: `uv run python bench/race_storm.py [--quick] [--db ...] [--control]`.

Slotwise runs as several real processes (uvicorn: 4 workers on PostgreSQL, 2 on one SQLite
file) while many concurrent clients book, cancel and reschedule in a few providers' busiest
hours. Afterwards an SQL self-join counts active appointments that overlap: a provider's in
blocked time (the slot widened by its buffers), a client's in booked time. Expected on both
databases: 0 overlapping pairs and 0 server errors.

The storm:

- 3 providers working 09:00-13:00 on one day 3 days ahead (and the next): one in UTC
  without buffers, one in UTC with buffers (10-15 minutes), one in America/New_York with
  buffers who confirms bookings (so they stay pending, which is active too). Services of
  30, 45, 60 and 90 minutes plus the profile's 60-minute session, all on a 15-minute grid:
  lengths overlap, back-to-back edges meet, buffers collide.
- Signed-in clients (access tokens minted as auth/service.py does) and guests with distinct
  emails; every fourth guest uses a signed-in client's email (one person, two ways in), so
  the client-side rule races across both.
- The clients move in waves: at each step all of them act at the same moment. A step is:
  book a random grid time (now and
  then two at once, as from two tabs), or cancel or reschedule one of the appointments it
  holds (guests through their manage token): to a random grid time, or nudged 15-30 minutes
  from where it is, into its own time and against its neighbours' edges; or hold a grid
  time (``POST /holds``; half of them two days on, planned ahead, so that some holds
  find a free time after the first waves have filled the day) and, most often, book it
  with the hold's token at once (the rest are left to end: a hold takes its time while it
  lasts); or join the waitlist of a time
  another client was told is booked (a full slot or session; now and then a random grid
  time, which may be free: ``slot_available``), asking for the place to be booked for them or
  offered, while others cancel and reschedule, which hands freed places to the first in line.
  The first wave rushes into empty hours; so do the last two, which only book, on the next
  day (its hours just opened), and what they take is still there when the pairs are counted.

Counted: attempts, successes, refusals by code, 503 database_unavailable (a server-side
refusal, allowed), server errors (any other 5xx), transport errors; then the overlapping
pairs (the SQL self-join, cross-checked in Python) and whether every appointment's stored
status and start are what its client was last told; then the waitlist: every place handed
over is one row given to one waiter (no appointment named by two entries), a waiter's
booking is theirs at the time they waited for, an offer is a hold named by its entry.

`--control` also runs the same storm against `unguarded_app_factory`: a deliberately naive
check-then-insert (no lock, no constraint, a short pause between check and write). It must
produce overlaps; that shows the storm can catch a double booking. Not part of the product.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from support import (
    BENCH_DIR,
    DATABASES,
    SECRET_KEY,
    Server,
    _stop,
    _wait_ready,
    banner,
    bench_database,
    free_port,
    machine,
    postgres_unavailable,
    seeding_session,
    server_env,
)

from slotwise import scheduling
from slotwise.auth import tokens
from slotwise.auth.tokens import TokenType
from slotwise.booking import terms, write
from slotwise.booking.models import ACTIVE_STATUSES, Status
from slotwise.config import Settings
from slotwise.db import make_engine
from slotwise.models import Appointment, Provider, Service, User, WaitlistEntry, WeeklyPattern
from slotwise.users.models import Role

TAKING_TIME = (*ACTIVE_STATUSES, Status.HELD)  # what the pairs below count (a hold too)
SLOTWISE_APP = "slotwise.main:app_factory"
CONTROL_APP = "race_storm:unguarded_app_factory"
WORKERS = {"postgresql": 4, "sqlite": 2}
CONTROL_WORKERS = 2
POOL_SIZE = 4  # per worker: 4 workers x 4 stay well inside max_connections
DAYS_AHEAD = 3
OPENS, CLOSES = wall_time(9), wall_time(13)
GRID_MINUTES = 15
CLOSING_WAVES = 2  # the last waves only book, on the next day: a second opening rush
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class Plan:
    signed_in: int  # clients with an account
    guests: int  # clients without one
    steps: int  # actions per client (a two-tab step makes two requests)


FULL = Plan(signed_in=64, guests=32, steps=45)
QUICK = Plan(signed_in=24, guests=16, steps=10)


# -- the world: providers, services, clients -------------------------------------------------------


@dataclass(frozen=True)
class ProviderSpec:
    handle: str
    zone: str
    buffers: tuple[int, int]  # the profile's, for bookings without a service
    services: tuple[tuple[int, int, int], ...]  # (minutes, buffer before, buffer after)
    requires_confirmation: bool = False
    capacities: tuple[int, ...] = ()  # the services' seats a session (none given: 1 each)


PROVIDERS = (
    ProviderSpec("storm-plain", "UTC", (0, 0), ((30, 0, 0), (45, 0, 0), (60, 0, 0), (90, 0, 0))),
    ProviderSpec(
        "storm-buffered", "UTC", (15, 15), ((30, 15, 15), (45, 10, 10), (60, 15, 0), (90, 0, 15))
    ),
    ProviderSpec(
        "storm-new-york",
        "America/New_York",
        (10, 10),
        ((30, 10, 10), (45, 0, 0), (60, 10, 15), (90, 15, 15)),
        requires_confirmation=True,
    ),
    # Group sessions (capacity 3, 4 and 5) that overlap each other and the profile's
    # one-to-one session.
    ProviderSpec(
        "storm-group", "UTC", (0, 0), ((60, 0, 0), (45, 0, 0), (60, 0, 0)), capacities=(3, 4, 5)
    ),
)
# A group service's bookings aim mostly at a few session starts, so that sessions fill up.
SESSION_STARTS = (4, 10)  # grid steps after opening: 10:00 and 11:30


@dataclass(frozen=True)
class StormProvider:
    id: uuid.UUID
    handle: str
    zone: ZoneInfo
    day: date
    service_ids: tuple[uuid.UUID | None, ...]  # None: the profile's own 60-minute session
    group_ids: frozenset[uuid.UUID] = frozenset()  # those with more than one seat

    def grid(self, rng: random.Random, *, days_ahead: int = 0, session: bool = False) -> str:
        """A start on the 15-minute grid: mostly inside the hours, now and then on an edge;
        for a ``session`` (a group service's seat) mostly one of SESSION_STARTS."""
        day = self.day + timedelta(days=days_ahead)
        first = -1 if rng.random() < 0.05 else 0  # 08:45: its slot would start before 09:00
        last = 16 if rng.random() < 0.05 else 15  # 13:00: nothing fits
        steps = rng.randint(first, last)
        if session and rng.random() < 0.9:
            steps = rng.choice(SESSION_STARTS)
        minutes = GRID_MINUTES * steps
        start = datetime.combine(day, OPENS, self.zone) + timedelta(minutes=minutes)
        return start.isoformat()


@dataclass
class Held:
    """An appointment a client holds, as it was told."""

    id: str
    provider: StormProvider
    manage_token: str | None


@dataclass
class Client:
    name: str
    headers: dict[str, str]
    guest: dict[str, str] | None
    held: list[Held] = field(default_factory=list)

    def path(self, held: Held, action: str) -> str:
        if self.guest is None:
            return f"/api/v1/appointments/{held.id}/{action}"
        return f"/api/v1/bookings/{held.manage_token}/{action}"


@dataclass
class World:
    providers: list[StormProvider]
    clients: list[Client]


async def seed(url: str, plan: Plan) -> World:
    now = datetime.now(UTC)
    providers: list[StormProvider] = []
    users: list[User] = []
    async with seeding_session(url) as session:
        for spec in PROVIDERS:
            user = User(
                id=uuid.uuid4(),
                email=f"{spec.handle}@example.com",
                full_name=f"Provider {spec.handle}",
                role=Role.PROVIDER,
                hashed_password="!",
                created_at=now,
                updated_at=now,
            )
            provider = Provider(
                id=uuid.uuid4(),
                user_id=user.id,
                public_handle=spec.handle,
                timezone=spec.zone,
                session_duration_minutes=60,
                slot_interval_minutes=GRID_MINUTES,
                buffer_before_minutes=spec.buffers[0],
                buffer_after_minutes=spec.buffers[1],
                min_notice_minutes=0,
                max_advance_days=365,
                requires_confirmation=spec.requires_confirmation,
                cancellation_window_minutes=0,
                created_at=now,
                updated_at=now,
            )
            session.add(user)
            await session.flush()
            session.add(provider)
            await session.flush()
            services = [
                Service(
                    id=uuid.uuid4(),
                    provider_id=provider.id,
                    name=f"{minutes} minutes",
                    duration_minutes=minutes,
                    buffer_before_minutes=before,
                    buffer_after_minutes=after,
                    slot_interval_minutes=GRID_MINUTES,
                    capacity=capacity,
                    created_at=now,
                    updated_at=now,
                )
                for (minutes, before, after), capacity in zip(
                    spec.services,
                    spec.capacities or (1,) * len(spec.services),
                    strict=True,
                )
            ]
            session.add_all(services)
            session.add_all(
                WeeklyPattern(
                    provider_id=provider.id,
                    day_of_week=day,
                    start_time=OPENS,
                    end_time=CLOSES,
                    created_at=now,
                    updated_at=now,
                )
                for day in range(7)
            )
            await session.flush()
            zone = ZoneInfo(spec.zone)
            providers.append(
                StormProvider(
                    id=provider.id,
                    handle=spec.handle,
                    zone=zone,
                    day=now.astimezone(zone).date() + timedelta(days=DAYS_AHEAD),
                    service_ids=(None, *(s.id for s in services)),
                    group_ids=frozenset(s.id for s in services if s.capacity > 1),
                )
            )
        users = [
            User(
                id=uuid.uuid4(),
                email=f"storm-client-{i:03d}@example.com",
                full_name=f"Client {i}",
                role=Role.CLIENT,
                hashed_password="!",
                created_at=now,
                updated_at=now,
            )
            for i in range(plan.signed_in)
        ]
        session.add_all(users)
        await session.commit()
    settings = Settings(_env_file=None, database_url=url, secret_key=SECRET_KEY)  # type: ignore[call-arg]
    clients = [
        Client(
            name=user.email,
            headers={
                "Authorization": "Bearer "
                + tokens.issue(
                    settings,
                    user_id=user.id,
                    session_id=uuid.uuid4(),
                    token_type=TokenType.ACCESS,
                    now=now,
                ).token
            },
            guest=None,
        )
        for user in users
    ]
    for i in range(plan.guests):
        # Every fourth guest is a signed-in client booking without signing in: one person.
        shared = i % 4 == 3 and i < len(users)
        email = users[i].email if shared else f"storm-guest-{i:03d}@example.com"
        clients.append(Client(name=email, headers={}, guest={"name": f"Guest {i}", "email": email}))
    return World(providers=providers, clients=clients)


# -- the storm -------------------------------------------------------------------------------------


@dataclass
class Told:
    status: str
    start_at: datetime


@dataclass
class Tally:
    attempts: Counter[str] = field(default_factory=Counter)  # by kind: book, cancel, reschedule
    successes: Counter[str] = field(default_factory=Counter)
    refusals: Counter[tuple[str, int, str]] = field(default_factory=Counter)  # kind, status, code
    unavailable: Counter[str] = field(default_factory=Counter)  # 503s, by kind
    server_errors: int = 0
    transport_errors: int = 0
    samples: list[str] = field(default_factory=list)  # exact request and response of failures
    told: dict[str, Told] = field(default_factory=dict)  # appointment id -> last 2xx answer
    # Times answered as booked (provider, start as asked, service): what joiners wait for.
    booked_times: list[tuple[StormProvider, str, str | None]] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)  # waitlist entries' ids
    uncertain: set[str] = field(default_factory=set)  # changes whose outcome is unknown
    uncertain_bookings: int = 0
    elapsed_s: float = 0.0
    server_log: list[str] = field(default_factory=list)

    def sample(self, text: str) -> None:
        if len(self.samples) < 10:
            self.samples.append(text[:1500])


class Storm:
    def __init__(self, http: httpx.AsyncClient, world: World, tally: Tally) -> None:
        self.http = http
        self.world = world
        self.tally = tally

    async def call(
        self, kind: str, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response | None:
        tally = self.tally
        tally.attempts[kind] += 1
        try:
            response = await self.http.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            tally.transport_errors += 1
            tally.sample(f"POST {path} {body} -> {exc.__class__.__name__}: {exc}")
            return None
        status = response.status_code
        if 200 <= status < 300:
            tally.successes[kind] += 1
            return response
        if status == 503:
            tally.unavailable[kind] += 1
        elif status >= 500:
            tally.server_errors += 1
            tally.sample(f"POST {path} {body} -> {status} {response.text}")
        else:
            tally.refusals[(kind, status, _code(response))] += 1
        return response

    async def book(self, client: Client, rng: random.Random, *, next_day: bool = False) -> None:
        provider = rng.choice(self.world.providers)
        service_id = rng.choice(provider.service_ids)
        session = service_id in provider.group_ids
        start = provider.grid(rng, days_ahead=1 if next_day else 0, session=session)
        body: dict[str, Any] = {"provider_id": str(provider.id), "start_datetime": start}
        if service_id is not None:
            body["service_id"] = str(service_id)
        if client.guest is not None:
            body["guest_details"] = client.guest
        await self._booked(client, provider, body, "book")

    async def hold_and_book(self, client: Client, rng: random.Random) -> None:
        """A hold of a grid time (the storm's day or, half the time, the day after the
        closing waves' own: planned ahead, free of the rush), then (three times in four)
        its booking with the token, drawn before the hold is asked for: how many holds are
        booked does not depend on how many the server grants."""
        provider = rng.choice(self.world.providers)
        service_id = rng.choice(provider.service_ids)
        session = service_id in provider.group_ids
        start = provider.grid(rng, days_ahead=2 if rng.random() < 0.5 else 0, session=session)
        book_it = rng.random() >= 0.25
        body: dict[str, Any] = {"provider_id": str(provider.id), "start_datetime": start}
        if service_id is not None:
            body["service_id"] = str(service_id)
        held = await self.call("hold", "/api/v1/holds", body, client.headers)
        if held is None or held.status_code != 201 or not book_it:
            return
        body["hold_token"] = held.json()["hold_token"]
        if client.guest is not None:
            body["guest_details"] = client.guest
        await self._booked(client, provider, body, "book_held")

    async def _booked(
        self, client: Client, provider: StormProvider, body: dict[str, Any], kind: str
    ) -> None:
        response = await self.call(kind, "/api/v1/appointments/", body, client.headers)
        if response is None or response.status_code >= 500:
            self.tally.uncertain_bookings += 1
        elif response.status_code == 201:
            created = response.json()
            self._tell(created)
            client.held.append(Held(created["id"], provider, created.get("manage_token")))
            self.tally.booked_times.append(
                (provider, body["start_datetime"], body.get("service_id"))
            )

    async def join(self, client: Client, rng: random.Random) -> None:
        """In line for a time another client was told is booked (a full one-to-one slot,
        or a session that may be full), or now and then for a random grid time."""
        booked = self.tally.booked_times
        if booked and rng.random() < 0.85:
            provider, start, service_id = rng.choice(booked)
        else:
            provider = rng.choice(self.world.providers)
            service_id = rng.choice(provider.service_ids)
            start = provider.grid(rng, session=service_id in provider.group_ids)
            service_id = str(service_id) if service_id is not None else None
        body: dict[str, Any] = {
            "provider_id": str(provider.id),
            "start_datetime": start,
            "mode": rng.choice(("book", "offer")),
        }
        if service_id is not None:
            body["service_id"] = service_id
        if client.guest is not None:
            body["guest_details"] = client.guest
        response = await self.call("join", "/api/v1/waitlist", body, client.headers)
        if response is not None and response.status_code == 201:
            self.tally.joined.append(response.json()["id"])

    async def cancel(self, client: Client, held: Held) -> None:
        client.held.remove(held)
        response = await self.call("cancel", client.path(held, "cancel"), {}, client.headers)
        self._after_change(held, response)

    async def reschedule(self, client: Client, held: Held, rng: random.Random) -> None:
        told = self.tally.told.get(held.id)
        if told is not None and rng.random() < 0.5:  # a nudge: into its own time and the edges
            shift = timedelta(minutes=GRID_MINUTES * rng.choice((-2, -1, 1, 2)))
            new_start = (told.start_at + shift).astimezone(held.provider.zone).isoformat()
        else:
            new_start = held.provider.grid(rng)
        body = {"new_start_time": new_start}
        response = await self.call(
            "reschedule", client.path(held, "reschedule"), body, client.headers
        )
        self._after_change(held, response)

    def _tell(self, answer: dict[str, Any]) -> None:
        start_at = datetime.fromisoformat(answer["start_at"])
        self.tally.told[answer["id"]] = Told(answer["status"], start_at)

    def _after_change(self, held: Held, response: httpx.Response | None) -> None:
        if response is None or response.status_code >= 500:
            self.tally.uncertain.add(held.id)
        elif response.status_code < 300:
            self._tell(response.json())

    async def run_client(
        self, client: Client, steps: int, rng: random.Random, wave: asyncio.Barrier
    ) -> None:
        for index in range(steps):
            await wave.wait()  # every client acts at the same moment: each step is a burst
            try:
                await self.step(client, rng, closing=index >= steps - CLOSING_WAVES)
            except Exception as exc:  # an answer the storm cannot read: a failure, not a stop
                self.tally.transport_errors += 1
                self.tally.sample(f"{client.name}: {exc.__class__.__name__}: {exc}")

    async def step(self, client: Client, rng: random.Random, *, closing: bool) -> None:
        roll = rng.random()
        if client.held and roll < 0.25 and not closing:
            await self.cancel(client, rng.choice(client.held))
        elif client.held and roll < 0.5 and not closing:
            await self.reschedule(client, rng.choice(client.held), rng)
        elif 0.5 <= roll < 0.6 and not closing:
            await self.hold_and_book(client, rng)
        elif 0.6 <= roll < 0.7 and not closing:
            await self.join(client, rng)
        elif roll > 0.85:  # two tabs: two bookings at once by the same person
            await asyncio.gather(
                self.book(client, rng, next_day=closing), self.book(client, rng, next_day=closing)
            )
        else:
            await self.book(client, rng, next_day=closing)


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", response.status_code))
    except ValueError:
        return str(response.status_code)


async def storm(base_url: str, world: World, plan: Plan, *, seed_value: int) -> Tally:
    tally = Tally()
    # Idle connections are dropped by the client (1 s) before uvicorn closes them (5 s): a
    # request sent on a connection the server is closing would fail with a ReadError.
    limits = httpx.Limits(
        max_connections=len(world.clients) * 2, max_keepalive_connections=None, keepalive_expiry=1.0
    )
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0) as http:
        runner = Storm(http, world, tally)
        wave = asyncio.Barrier(len(world.clients))
        started = time.perf_counter()
        await asyncio.gather(
            *(
                runner.run_client(client, plan.steps, random.Random(seed_value * 10_000 + i), wave)
                for i, client in enumerate(world.clients)
            )
        )
        tally.elapsed_s = time.perf_counter() - started
    return tally


# -- verification ----------------------------------------------------------------------------------

# What takes time: the active statuses and holds (``booking.holds``; a hold left to end is
# still there, and counted, until a later booking of its provider releases it).
ACTIVE_SQL = "('pending', 'confirmed', 'held')"
# Instants are timestamptz on PostgreSQL and naive-UTC text ('YYYY-MM-DD HH:MM:SS.ffffff') on
# SQLite, which orders as text: the same comparison works on both.
# Seats of one group session share the provider's time: only rows of different sessions count.
PROVIDER_PAIRS_SQL = f"""
SELECT count(*) FROM appointments a JOIN appointments b
  ON a.provider_id = b.provider_id AND a.id < b.id AND a.session_key <> b.session_key
 AND a.blocked_start_at < b.blocked_end_at AND b.blocked_start_at < a.blocked_end_at
WHERE a.status IN {ACTIVE_SQL} AND b.status IN {ACTIVE_SQL}
"""  # noqa: S608 - constants only
# Sessions holding more active seats than their capacity.
OVER_CAPACITY_SQL = f"""
SELECT count(*) FROM (
  SELECT session_key FROM appointments WHERE status IN {ACTIVE_SQL}
  GROUP BY session_key HAVING count(*) > max(capacity)
) AS crowded
"""  # noqa: S608 - constants only
CLIENT_PAIRS_SQL = f"""
SELECT count(*) FROM appointments a JOIN appointments b
  ON a.client_key = b.client_key AND a.id < b.id
 AND a.start_at < b.end_at AND b.start_at < a.end_at
WHERE a.status IN {ACTIVE_SQL} AND b.status IN {ACTIVE_SQL}
"""  # noqa: S608 - constants only


@dataclass
class Verdict:
    provider_pairs: int
    client_pairs: int
    python_pairs: tuple[int, int]  # the same counts, recomputed in Python from the rows
    over_capacity: int  # group sessions with more active seats than their capacity
    seats: int  # active seats of group sessions at the end
    rows: int
    active: int
    told_mismatches: list[str]
    waiting: Counter[str] = field(default_factory=Counter)  # waitlist entries by status
    given_twice: int = 0  # places (appointment rows) named by more than one entry
    hand_mismatches: list[str] = field(default_factory=list)  # a place not the waiter's


async def verify(url: str, tally: Tally) -> Verdict:
    async with seeding_session(url) as session:
        provider_pairs = int(await session.scalar(text(PROVIDER_PAIRS_SQL)) or 0)
        client_pairs = int(await session.scalar(text(CLIENT_PAIRS_SQL)) or 0)
        over_capacity = int(await session.scalar(text(OVER_CAPACITY_SQL)) or 0)
        rows = (await session.execute(select(Appointment))).scalars().all()
        entries = (await session.execute(select(WaitlistEntry))).scalars().all()
    active = [a for a in rows if a.status in TAKING_TIME]

    def pairs(key: str, start: str, end: str) -> int:
        found = 0
        for a, b in itertools.combinations(active, 2):
            same_session = key == "provider_id" and a.session_key == b.session_key
            if (
                getattr(a, key) == getattr(b, key)
                and not same_session
                and getattr(a, start) < getattr(b, end)
                and getattr(b, start) < getattr(a, end)
            ):
                found += 1
        return found

    stored = {str(a.id): a for a in rows}
    mismatches = []
    for appointment_id, told in tally.told.items():
        if appointment_id in tally.uncertain:
            continue
        row = stored.get(appointment_id)
        if row is None:
            mismatches.append(f"{appointment_id}: answered 2xx, not stored")
        elif (row.status.value, row.start_at) != (told.status, told.start_at):
            mismatches.append(
                f"{appointment_id}: told {told.status} at {told.start_at.isoformat()}, "
                f"stored {row.status.value} at {row.start_at.isoformat()}"
            )
    given, given_twice, hand_mismatches = _handed_over(entries, stored)
    if tally.uncertain_bookings == 0:
        # A hold left to end is a row, not an appointment anyone was told of; nor is a
        # waiter's booking, made for them when a place freed.
        booked = [i for i, row in stored.items() if row.status is not Status.HELD]
        mismatches += [
            f"{i}: stored, never answered 201"
            for i in booked
            if i not in tally.told and i not in given
        ]
    return Verdict(
        provider_pairs=provider_pairs,
        client_pairs=client_pairs,
        python_pairs=(
            pairs("provider_id", "blocked_start_at", "blocked_end_at"),
            pairs("client_key", "start_at", "end_at"),
        ),
        over_capacity=over_capacity,
        seats=sum(a.capacity > 1 for a in active),
        rows=len(rows),
        active=len(active),
        told_mismatches=mismatches,
        waiting=Counter(entry.status for entry in entries),
        given_twice=given_twice,
        hand_mismatches=hand_mismatches,
    )


def _handed_over(
    entries: Sequence[WaitlistEntry], stored: dict[str, Appointment]
) -> tuple[set[str], int, list[str]]:
    """The places the waitlist handed over (appointment ids), how many were named by more
    than one entry, and any that is not its waiter's: a booking for them at the time they
    waited for, or an offer's hold named by their entry."""
    named = Counter(
        str(entry.appointment_id)
        for entry in entries
        if entry.status in ("booked", "offered") and entry.appointment_id is not None
    )
    problems = []
    for entry in entries:
        if entry.status not in ("booked", "offered"):
            continue
        row = stored.get(str(entry.appointment_id))
        if row is None:
            problems.append(
                f"entry {entry.id} ({entry.status}): no appointment {entry.appointment_id}"
            )
        elif row.start_at != entry.start_at or row.provider_id != entry.provider_id:
            problems.append(f"entry {entry.id}: got {row.start_at}, waited for {entry.start_at}")
        elif entry.status == "offered" and (
            row.status is not Status.HELD or row.held_by != f"waitlist:{entry.id}"
        ):
            problems.append(f"entry {entry.id}: offered, its hold is {row.status} {row.held_by}")
        elif entry.status == "booked" and row.client_key != entry.client_key:
            problems.append(f"entry {entry.id}: booked, the booking is {row.client_key}'s")
    return set(named), sum(1 for n in named.values() if n > 1), problems


# -- servers ---------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_for_workers(pid: int, workers: int, timeout_s: float = 60.0) -> None:
    """Until `workers` worker processes exist and all are idle (started up, listening):
    otherwise a short storm is served by whichever worker happened to start first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = [c for c in _children(pid) if b"spawn_main" in _cmdline(c)]
        if len(children) >= workers:
            before = [_cpu_seconds(c) for c in children]
            time.sleep(0.3)
            if all(_cpu_seconds(c) - b < 0.05 for c, b in zip(children, before, strict=True)):
                return
        else:
            time.sleep(0.1)
    raise RuntimeError(f"{workers} uvicorn workers were not up within {timeout_s:.0f} s")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@contextlib.contextmanager
def storm_server(
    app: str,
    database_url: str,
    *,
    label: str,
    workers: int,
    app_dir: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """`uvicorn APP --factory --workers N` in its own process group; killed on exit."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="slotwise-bench-storm-server-", dir="/tmp")
    log_path = Path(workdir) / "server.log"
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    command += ["--no-access-log", "--log-level", "warning"]
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    env = server_env(database_url, SLOTWISE_DB_POOL_SIZE=str(POOL_SIZE), **(extra_env or {}))
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(label=label, port=port, pid=process.pid, log_path=log_path)
    try:
        _wait_ready(server, process, "/health")
        _wait_for_workers(process.pid, workers)
        yield server
    except BaseException:
        tail = log_path.read_text(errors="replace")[-2000:]
        print(f"--- {label} log tail ---\n{tail}\n---", file=sys.stderr)
        raise
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def server_log_errors(path: Path) -> list[str]:
    """The server's own account of anything unexpected (tracebacks, unhandled errors)."""
    lines = path.read_text(errors="replace").splitlines()
    marks = ("Traceback", "unhandled_error", "Error", "error")
    return [line[:300] for line in lines if any(m in line for m in marks)][:20]


# -- a run -----------------------------------------------------------------------------------------


@dataclass
class StormResult:
    database: str
    unguarded: bool
    workers: int
    plan: Plan
    tally: Tally
    verdict: Verdict

    @property
    def attempts(self) -> int:
        return sum(self.tally.attempts.values())

    @property
    def successes(self) -> int:
        return sum(self.tally.successes.values())

    @property
    def overlapping_pairs(self) -> int:
        return self.verdict.provider_pairs + self.verdict.client_pairs

    @property
    def refusals_by_code(self) -> Counter[str]:
        codes: Counter[str] = Counter()
        for (_kind, status, code), n in self.tally.refusals.items():
            codes[f"{status} {code}"] += n
        return codes

    @property
    def clean(self) -> bool:
        """What the product must show: no overlap, no server error, every answer kept."""
        return (
            self.overlapping_pairs == 0
            and self.verdict.over_capacity == 0
            and self.tally.server_errors == 0
            and self.tally.transport_errors == 0
            and not self.verdict.told_mismatches
            and self.verdict.given_twice == 0
            and not self.verdict.hand_mismatches
            and self.verdict.python_pairs
            == (self.verdict.provider_pairs, self.verdict.client_pairs)
        )


def run_storm(
    kind: str,
    plan: Plan,
    *,
    unguarded: bool = False,
    seed_value: int = 1,
    control_window_s: float | None = None,
) -> StormResult:
    """One storm on a fresh database of `kind`, against Slotwise or the unguarded control."""
    workers = CONTROL_WORKERS if unguarded else WORKERS[kind]
    with bench_database(kind, "storm") as url:
        if unguarded and kind == "postgresql":
            asyncio.run(_drop_exclusion_constraints(url))
        world = asyncio.run(seed(url, plan))
        app, app_dir = (CONTROL_APP, BENCH_DIR) if unguarded else (SLOTWISE_APP, None)
        label = f"{'control' if unguarded else 'slotwise'}-{kind}"
        window = {CONTROL_WINDOW_ENV: str(control_window_s)} if control_window_s else None
        with storm_server(
            app, url, label=label, workers=workers, app_dir=app_dir, extra_env=window
        ) as server:
            tally = asyncio.run(storm(server.url, world, plan, seed_value=seed_value))
            tally.server_log = server_log_errors(server.log_path)
        verdict = asyncio.run(verify(url, tally))
    return StormResult(kind, unguarded, workers, plan, tally, verdict)


async def _drop_exclusion_constraints(url: str) -> None:
    async with seeding_session(url) as session:
        await session.execute(
            text(
                "ALTER TABLE appointments"
                " DROP CONSTRAINT ex_appointments_provider_no_overlap,"
                " DROP CONSTRAINT ex_appointments_client_no_overlap"
            )
        )
        await session.commit()


def format_report(result: StormResult) -> str:
    tally, verdict = result.tally, result.verdict
    what = "UNGUARDED CONTROL" if result.unguarded else "Slotwise"
    kinds = ("book", "cancel", "reschedule", "hold", "book_held", "join")

    def by_kind(counter: Counter[str]) -> str:
        return ", ".join(f"{k} {counter[k]:,}" for k in kinds)

    rate = result.attempts / tally.elapsed_s if tally.elapsed_s else 0.0
    lines = [
        f"{what} on {LABELS[result.database]}, {result.workers} uvicorn processes, "
        f"{len(PROVIDERS)} providers, {result.plan.signed_in} signed-in clients + "
        f"{result.plan.guests} guests, {result.plan.steps} steps each",
        f"  attempts            {result.attempts:,} ({by_kind(tally.attempts)}) in "
        f"{tally.elapsed_s:.1f} s, {rate:,.0f}/s",
        f"  successes (2xx)     {result.successes:,} ({by_kind(tally.successes)})",
        "  refusals by code    "
        + (", ".join(f"{c} {n:,}" for c, n in result.refusals_by_code.most_common()) or "none"),
        f"  503 unavailable     {sum(tally.unavailable.values()):,}"
        + (f" ({by_kind(tally.unavailable)})" if tally.unavailable else ""),
        f"  server errors       {tally.server_errors:,} (5xx other than 503)",
        f"  transport errors    {tally.transport_errors:,}",
        f"  appointments        {verdict.rows:,} stored, {verdict.active:,} active at the end",
        f"  overlapping pairs   {result.overlapping_pairs:,} (provider {verdict.provider_pairs:,}, "
        f"client {verdict.client_pairs:,}; Python recount {verdict.python_pairs[0]:,} / "
        f"{verdict.python_pairs[1]:,})",
        f"  group sessions      {verdict.seats:,} active seats; "
        f"{verdict.over_capacity:,} sessions over capacity",
        f"  told vs stored      {len(verdict.told_mismatches):,} mismatches",
        "  waitlist entries    "
        + (", ".join(f"{k} {n:,}" for k, n in verdict.waiting.most_common()) or "none")
        + f"; places given twice {verdict.given_twice:,}, "
        f"not the waiter's {len(verdict.hand_mismatches):,}",
    ]
    lines += [f"    {m}" for m in verdict.told_mismatches[:5]]
    lines += [f"    {m}" for m in verdict.hand_mismatches[:5]]
    lines += [f"  sample: {s}" for s in tally.samples[:5]]
    lines += [f"  server log: {s}" for s in tally.server_log[:10]]
    return "\n".join(lines)


# -- the negative control: a deliberately unguarded booking path (not the product) -----------------

CHECK_TO_WRITE_S = 0.05  # the time a busy server may spend between its check and its write
CONTROL_WINDOW_ENV = "STORM_CONTROL_WINDOW_S"  # to try other widths


def unguarded_app_factory() -> FastAPI:
    """Check-then-write with no lock and no constraint, each in its own transaction.

    Same routes and answers as Slotwise for what the storm sends (book; cancel and reschedule
    by id or by manage token), the same tables, the same placement (`scheduling.place`),
    the same judgment (`booking.write.judge`); only the guard is missing. The grid and
    policies are not checked: the control is about overlaps only.
    """
    settings = Settings()
    window_s = float(os.environ.get(CONTROL_WINDOW_ENV, CHECK_TO_WRITE_S))
    engine = make_engine(settings.database_url, pool_size=POOL_SIZE)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    # Writes take SQLite's write lock up front, so that they queue instead of failing on a
    # stale snapshot; the check before them stays a separate transaction (the flaw).
    writes = async_sessionmaker(
        engine.execution_options(sqlite_immediate=True), expire_on_commit=False
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def refuse(status: int, code: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": code}, status_code=status)

    def answer(appointment: Appointment, status: int, token: str | None = None) -> JSONResponse:
        body = {
            "id": str(appointment.id),
            "status": appointment.status.value,
            "start_at": appointment.start_at.isoformat(),
            "manage_token": token,
        }
        return JSONResponse(body, status_code=status)

    async def client_of(request: Request, body: dict[str, Any]) -> tuple[str, uuid.UUID | None]:
        authorization = request.headers.get("authorization")
        if authorization is None:
            return str(body["guest_details"]["email"]).lower(), None
        claims = tokens.decode(settings, authorization.split()[1], expected=TokenType.ACCESS)
        async with sessions() as session:
            user = await session.get(User, claims.user_id)
        assert user is not None
        return user.email.lower(), user.id

    async def conflict(
        session: Any,
        provider_id: uuid.UUID,
        client_key: str,
        placement: scheduling.Placement,
        version: int,
        exclude_id: uuid.UUID | None = None,
    ) -> JSONResponse | None:
        """The application's own judgment, without its lock and apart from the write."""
        claim = write.Claim(
            provider_id=provider_id,
            client_key=client_key,
            start_at=placement.start_at,
            end_at=placement.end_at,
            blocked_start_at=placement.blocked_start_at,
            blocked_end_at=placement.blocked_end_at,
            rules_version=version,
            now=datetime.now(UTC),
            check_standing=False,
            exclude_id=exclude_id,
        )
        (found,) = await write.judge(session, [claim])
        if found.provider_busy:
            return refuse(409, "slot_unavailable")
        if found.client_busy:
            return refuse(409, "client_conflict")
        return None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/appointments/")
    async def book(request: Request) -> JSONResponse:
        body = await request.json()
        client_key, client_id = await client_of(request, body)
        async with sessions() as session:  # the check, in a transaction of its own
            known = await terms.read(session, body["provider_id"], now=datetime.now(UTC))
            provider = known.terms
            service_id = uuid.UUID(body["service_id"]) if body.get("service_id") else None
            offering = provider.offering(service_id)
            assert offering is not None
            start = datetime.fromisoformat(body["start_datetime"])
            placement = scheduling.place(provider, offering, scheduling.Request(service_id, start))
            assert isinstance(placement, scheduling.Placement)
            if refusal := await conflict(
                session, provider.provider_id, client_key, placement, provider.version
            ):
                return refusal
        await asyncio.sleep(window_s)
        guest = body.get("guest_details")
        now = datetime.now(UTC)
        appointment_id = uuid.uuid4()
        appointment = Appointment(
            id=appointment_id,
            session_key=appointment_id,  # no seats here: every booking its own
            provider_id=provider.provider_id,
            service_id=offering.id,
            client_id=client_id,
            guest_name=guest["name"] if guest else None,
            guest_email=client_key if guest else None,
            client_key=client_key,
            start_at=placement.start_at,
            end_at=placement.end_at,
            blocked_start_at=placement.blocked_start_at,
            blocked_end_at=placement.blocked_end_at,
            timezone=known.timezone,
            status=Status.CONFIRMED,
            created_at=now,
            updated_at=now,
            events=[],
        )
        async with writes() as session, session.begin():  # the write, in another
            session.add(appointment)
        token = f"control-{appointment.id.hex}" if guest else None
        return answer(appointment, 201, token)

    async def load(session: Any, appointment_id: str) -> Appointment | None:
        return await session.get(Appointment, uuid.UUID(appointment_id.removeprefix("control-")))

    async def cancel(appointment_id: str) -> JSONResponse:
        async with writes() as session, session.begin():
            appointment = await load(session, appointment_id)
            if appointment is None:
                return refuse(404, "appointment_not_found")
            if appointment.status not in ACTIVE_STATUSES:
                return refuse(409, "invalid_transition")
            appointment.status = Status.CANCELLED
        return answer(appointment, 200)

    async def reschedule(appointment_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        async with sessions() as session:
            appointment = await load(session, appointment_id)
            if appointment is None:
                return refuse(404, "appointment_not_found")
            if appointment.status not in ACTIVE_STATUSES:
                return refuse(409, "invalid_transition")
            known = await terms.read(session, str(appointment.provider_id), now=datetime.now(UTC))
            provider = known.terms
            offering = provider.offering(appointment.service_id)
            assert offering is not None
            start = datetime.fromisoformat(body["new_start_time"])
            asked = scheduling.Request(appointment.service_id, start)
            placement = scheduling.place(provider, offering, asked)
            assert isinstance(placement, scheduling.Placement)
            if refusal := await conflict(
                session,
                provider.provider_id,
                appointment.client_key,
                placement,
                provider.version,
                appointment.id,
            ):
                return refusal
        await asyncio.sleep(window_s)
        async with writes() as session, session.begin():
            moved = await load(session, appointment_id)
            assert moved is not None
            moved.start_at, moved.end_at = placement.start_at, placement.end_at
            moved.blocked_start_at = placement.blocked_start_at
            moved.blocked_end_at = placement.blocked_end_at
        return answer(moved, 200)

    for prefix in ("/api/v1/appointments/{appointment_id}", "/api/v1/bookings/{appointment_id}"):
        app.add_api_route(prefix + "/cancel", cancel, methods=["POST"])
        app.add_api_route(prefix + "/reschedule", reschedule, methods=["POST"])
    return app


# -- command line ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description="Cross-process race storm on booking.")
    parser.add_argument("--quick", action="store_true", help="a few hundred requests")
    parser.add_argument("--db", choices=(*DATABASES, "both"), default="both")
    parser.add_argument(
        "--control", action="store_true", help="also storm the unguarded control (must overlap)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the clients' choices")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    kinds = DATABASES if args.db == "both" else (args.db,)
    banner(f"race storm ({'quick' if args.quick else 'full'}), {machine()}")
    failed = False
    for kind in kinds:
        if kind == "postgresql" and (reason := postgres_unavailable()):
            print(f"skipped PostgreSQL: {reason}")
            continue
        for unguarded in (False, True) if args.control else (False,):
            result = run_storm(kind, plan, unguarded=unguarded, seed_value=args.seed)
            print(format_report(result), flush=True)
            if unguarded:
                ok = result.overlapping_pairs > 0
                print(f"  control: {'caught overlaps' if ok else 'FOUND NO OVERLAP'}")
            else:
                ok = result.clean
                print(f"  expected 0 overlaps, 0 server errors: {'yes' if ok else 'NO'}")
            failed = failed or not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
