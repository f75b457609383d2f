"""``slotwise demo --history``: half a year of simulated bookings by a population of clients,
for training and evaluating the slot ranking (``slotwise train-ranking``).

The population (a fixed seed, so every run makes the same history):

- 60 clients, each a regular of one of the demo's three providers (Monday to Friday,
  09:00-12:00 and 13:00-17:00 in their zones, hour-long sessions), with habits: one or two
  favourite weekdays, a favourite hour, how far ahead they book (1 to 10 days), how
  closely they keep to their habits, and a time of day they tend to miss (40% of
  appointments then, 5% otherwise; half the clients have one).
- Every one to three weeks, a client books: at a random working hour of a weekday, they
  look at their provider's free slots from the next day to 8 days ahead and pick one by
  their habits (a weekday they like, near their hour, around their usual lead time), with
  noise: a Gumbel draw per slot (a multinomial logit choice). Each booking is written as
  it would have been (created when booked), then completed or missed.
- The weeks run from 26 weeks before now to the day before; providers' earlier bookings
  are what later clients find taken.

It writes past appointments only (completed or no-show), so nothing bookable changes.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking.models import Appointment, AppointmentEvent, Status
from slotwise.db import Database
from slotwise.demo import PROVIDERS
from slotwise.providers import repository as providers_repo
from slotwise.scheduling import resolve_wall_time
from slotwise.users import repository as users_repo
from slotwise.users.models import Role, User

SEED = 20261121
CLIENTS = 60
WEEKS = 26
HOURS = (9, 10, 11, 13, 14, 15, 16)
PREFIX = "sim-"  # the simulated clients' emails: sim-NN@demo.slotwise.dev


@dataclass(frozen=True)
class Habit:
    email: str
    provider: int  # index into demo.PROVIDERS
    weekdays: tuple[int, ...]
    hour: int
    lead_days: float
    strictness: float  # how much habits outweigh the noise
    missed_hour: int | None  # the time of day they tend to miss


def population(rng: random.Random) -> list[Habit]:
    habits = []
    for n in range(CLIENTS):
        weekdays = tuple(sorted(rng.sample(range(5), rng.choice((1, 2)))))
        habits.append(
            Habit(
                email=f"{PREFIX}{n:02d}@demo.slotwise.dev",
                provider=n % len(PROVIDERS),
                weekdays=weekdays,
                hour=rng.choice(HOURS),
                lead_days=rng.uniform(1, 10),
                strictness=rng.uniform(0.5, 2.5),
                missed_hour=rng.choice(HOURS) if rng.random() < 0.5 else None,
            )
        )
    return habits


def utility(habit: Habit, start: datetime, booked_at: datetime) -> float:
    """How much the client likes a slot (local wall time), before the noise."""
    weekday = 1.5 if start.weekday() in habit.weekdays else 0.0
    hour = 1.2 * math.exp(-((start.hour - habit.hour) ** 2) / 2.0)
    lead = (start - booked_at) / timedelta(days=1)
    soon = -0.15 * abs(lead - habit.lead_days)
    return habit.strictness * (weekday + hour + soon)


def _free_slots(zone: ZoneInfo, after: datetime, taken: set[datetime]) -> list[datetime]:
    """The provider's hour slots from the day after ``after`` to 8 days after it."""
    first = after.astimezone(zone).date() + timedelta(days=1)
    found = []
    for offset in range(8):
        day = first + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for hour in HOURS:
            start = resolve_wall_time(day, time(hour), zone)
            if start not in taken:
                found.append(start)
    return found


async def simulate(database: Database, *, now: datetime) -> int:
    """Write the simulated history once (a second run finds it and writes nothing); the
    count of bookings written."""
    rng = random.Random(SEED)  # noqa: S311 - a simulation, wanted reproducible
    habits = population(rng)
    async with database.session(writes=True) as session, session.begin():
        done = await session.scalar(
            select(func.count()).select_from(User).where(User.email.like(f"{PREFIX}%"))
        )
        if done:
            return 0
        providers = [await providers_repo.get_by_ref(session, spec.handle) for spec in PROVIDERS]
        if any(p is None for p in providers):
            raise RuntimeError("run `slotwise demo` first: its providers are the history's")
        clients = [
            await _client(session, habit, now - timedelta(weeks=WEEKS + 1)) for habit in habits
        ]
        taken: list[set[datetime]] = [set() for _ in providers]
        moments = []
        for index, _habit in enumerate(habits):
            at = now - timedelta(weeks=WEEKS) + timedelta(days=rng.uniform(0, 14))
            while at < now - timedelta(days=9):
                moments.append((at, index))
                at += timedelta(days=rng.choice((7, 14, 21)) + rng.uniform(-1, 1))
        moments.sort()
        written = 0
        for booked_at, index in moments:
            habit, client = habits[index], clients[index]
            provider = providers[habit.provider]
            assert provider is not None
            zone = ZoneInfo(provider.timezone)
            hour = rng.choice(HOURS)  # when they sit down to book, their local time
            booked_at = resolve_wall_time(booked_at.astimezone(zone).date(), time(hour), zone)
            offered = _free_slots(zone, booked_at, taken[habit.provider])
            if not offered:
                continue
            pick = max(
                offered,
                key=lambda s: (
                    utility(habit, s.astimezone(zone), booked_at)
                    - math.log(-math.log(rng.random() or 1e-12))
                ),
            )
            taken[habit.provider].add(pick)
            local_hour = pick.astimezone(zone).hour
            missed_rate = 0.4 if habit.missed_hour == local_hour else 0.05
            status = Status.NO_SHOW if rng.random() < missed_rate else Status.COMPLETED
            _add(session, provider.id, provider.timezone, client, pick, booked_at, status)
            written += 1
    return written


async def _client(session: AsyncSession, habit: Habit, now: datetime) -> User:
    found = await users_repo.get_by_email(session, habit.email)
    if found is not None:
        return found
    user = User(
        email=habit.email,
        full_name=f"Simulated client {habit.email[4:6]}",
        role=Role.CLIENT,
        hashed_password="!",  # noqa: S106 - no password: these clients never sign in
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    return user


def _add(
    session: AsyncSession,
    provider_id: uuid.UUID,
    zone: str,
    client: User,
    start: datetime,
    booked_at: datetime,
    status: Status,
) -> None:
    appointment_id = uuid.uuid4()
    end = start + timedelta(hours=1)
    session.add(
        Appointment(
            id=appointment_id,
            session_key=appointment_id,
            provider_id=provider_id,
            service_id=None,
            client_id=client.id,
            client_key=client.email.lower(),
            start_at=start,
            end_at=end,
            blocked_start_at=start,
            blocked_end_at=end,
            timezone=zone,
            status=status,
            notes=None,
            sequence=1,
            created_at=booked_at,
            updated_at=end,
        )
    )
    session.add(
        AppointmentEvent(
            appointment_id=appointment_id,
            at=booked_at,
            actor_id=client.id,
            actor_role="client",
            action="created",
            to_status=Status.CONFIRMED.value,
            to_start_at=start,
        )
    )
