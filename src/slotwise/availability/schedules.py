"""A provider's profile and hours as a listing reads them, kept by each worker.

A listing is computed from two kinds of rows: the provider's schedule (its profile, its
account's standing, its services, weekly hours, date overrides and time off: five
statements to read) and its busy time (one). The schedule changes rarely; busy time
changes with every booking. So each worker keeps schedules between listings, and a listing
uses a kept one only once it is proven current: the provider's rules version, which
triggers raise on every change to any row of the schedule, whichever process makes it, and
which bookings do not touch (migration 0009; `sources` declares the tables), comes in the
same statement as the busy time (`busy.BusyReader`). A schedule whose version is behind is
read again.

Overrides and time off are kept for the dates a listing can offer (today to the horizon,
with a day's margin for zones); a window outside reads its own.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.availability import repository
from slotwise.availability.models import DateOverride, TimeOff, WeeklyPattern
from slotwise.providers import repository as providers_repo
from slotwise.providers import service as providers_service
from slotwise.providers.models import Provider, Service

MARGIN = timedelta(days=1)
KEPT_SCHEDULES = 4096


class SessionDefaults(Protocol):
    """The profile's default session, which a listing without a service offers."""

    @property
    def session_duration_minutes(self) -> int: ...
    @property
    def slot_interval_minutes(self) -> int | None: ...
    @property
    def buffer_before_minutes(self) -> int: ...
    @property
    def buffer_after_minutes(self) -> int: ...


def service_spec(
    provider: SessionDefaults, service: Service | None, duration_minutes: int | None
) -> scheduling.ServiceSpec:
    """The engine's view of what is booked: a service, or the profile's default session."""
    if service is not None:
        return scheduling.ServiceSpec(
            duration=timedelta(minutes=service.duration_minutes),
            buffer_before=timedelta(minutes=service.buffer_before_minutes),
            buffer_after=timedelta(minutes=service.buffer_after_minutes),
            interval=_minutes(service.slot_interval_minutes or provider.slot_interval_minutes),
            capacity=service.capacity,
        )
    duration = duration_minutes or provider.session_duration_minutes
    interval = provider.slot_interval_minutes or duration
    return scheduling.ServiceSpec(
        duration=timedelta(minutes=duration),
        buffer_before=timedelta(minutes=provider.buffer_before_minutes),
        buffer_after=timedelta(minutes=provider.buffer_after_minutes),
        interval=timedelta(minutes=interval),
    )


def _minutes(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(minutes=value)


def weekly_rules(rows: list[WeeklyPattern]) -> list[scheduling.WeeklyRule]:
    return [
        scheduling.WeeklyRule(
            day_of_week=row.day_of_week,
            start_time=row.start_time,
            end_time=row.end_time,
            valid_from_date=row.valid_from_date,
            valid_until_date=row.valid_until_date,
        )
        for row in rows
    ]


def override_rules(rows: list[DateOverride]) -> list[scheduling.DateOverride]:
    return [
        scheduling.DateOverride(
            on_date=row.on_date,
            kind=scheduling.OverrideKind(row.kind),
            ranges=tuple(
                scheduling.TimeRange(time.fromisoformat(a), time.fromisoformat(b))
                for a, b in row.ranges
            ),
        )
        for row in rows
    ]


def time_off_rules(rows: list[TimeOff]) -> list[scheduling.TimeOff]:
    return [scheduling.TimeOff(start_date=row.start_date, end_date=row.end_date) for row in rows]


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """A provider's hours for some dates, as the engine takes them, and the busy time of its
    own calendars on those dates (merged instants)."""

    weekly: list[scheduling.WeeklyRule]
    overrides: list[scheduling.DateOverride]
    time_off: list[scheduling.TimeOff]
    busy: tuple[scheduling.Interval, ...] = ()


async def rules_for(
    session: AsyncSession,
    provider_id: uuid.UUID,
    start_date: date,
    end_date: date,
    *,
    zone: ZoneInfo,
) -> ProviderRules:
    patterns = await repository.patterns_for(session, provider_id, active_only=True)
    overrides = await repository.overrides_between(session, provider_id, start_date, end_date)
    time_off = await repository.time_off_between(session, provider_id, start_date, end_date)
    first = scheduling.day_extent(start_date, zone)
    last = scheduling.day_extent(end_date, zone)
    found = await repository.calendar_busy_between(
        session, provider_id, first.start_at, last.end_at
    )
    busy = scheduling.merge(scheduling.Interval(start, end) for start, end in found)
    return ProviderRules(
        weekly_rules(patterns), override_rules(overrides), time_off_rules(time_off), tuple(busy)
    )


def policy_of(provider: Provider) -> scheduling.BookingPolicy:
    """The provider's notice and horizon, as the engine takes them."""
    return scheduling.BookingPolicy(
        min_notice=timedelta(minutes=provider.min_notice_minutes),
        max_advance=timedelta(days=provider.max_advance_days),
    )


@dataclass(frozen=True, slots=True)
class Schedule:
    """What a provider's listings are computed from, busy time aside, as of ``version``."""

    provider_id: uuid.UUID
    user_id: uuid.UUID
    version: int
    public_handle: str
    timezone: str
    zone: ZoneInfo
    accepting_bookings: bool
    policy: scheduling.BookingPolicy
    session_duration_minutes: int
    slot_interval_minutes: int | None
    buffer_before_minutes: int
    buffer_after_minutes: int
    services: dict[uuid.UUID, scheduling.ServiceSpec]  # the active ones
    weekly: list[scheduling.WeeklyRule]
    overrides: list[scheduling.DateOverride]  # those of first_date..last_date
    time_off: list[scheduling.TimeOff]
    first_date: date
    last_date: date
    read_on: date  # the provider's local date when it was read
    limits: scheduling.Limits = field(default_factory=scheduling.Limits)  # full days: unlisted
    busy: tuple[scheduling.Interval, ...] = ()  # its calendars' busy time on those dates
    full_name: str = ""  # the provider's, for what suggestions say (`availability.ranking`)

    def covers(self, first: date, last: date) -> bool:
        return self.first_date <= first and last <= self.last_date

    def local_date(self, moment_at: datetime) -> date:
        return moment_at.astimezone(self.zone).date()


async def read(session: AsyncSession, provider: Provider, *, now: datetime) -> Schedule:
    """The schedule of a provider whose row (and account) was just read: the version is
    read before the hours, so a change committed meanwhile leaves it behind, and the
    schedule is found stale rather than wrongly current."""
    zone = ZoneInfo(provider.timezone)
    today = now.astimezone(zone).date()
    first_date = today - MARGIN
    try:
        last_date = today + timedelta(days=provider.max_advance_days) + MARGIN
    except OverflowError:  # a horizon past the calendar's end
        last_date = date.max
    services = await providers_repo.list_services(session, provider.id, active_only=True)
    rules = await rules_for(session, provider.id, first_date, last_date, zone=zone)
    return Schedule(
        provider_id=provider.id,
        user_id=provider.user_id,
        version=provider.rules_version,
        public_handle=provider.public_handle,
        timezone=provider.timezone,
        zone=zone,
        accepting_bookings=provider.accepting_bookings,
        policy=policy_of(provider),
        session_duration_minutes=provider.session_duration_minutes,
        slot_interval_minutes=provider.slot_interval_minutes,
        buffer_before_minutes=provider.buffer_before_minutes,
        buffer_after_minutes=provider.buffer_after_minutes,
        services={service.id: service_spec(provider, service, None) for service in services},
        weekly=rules.weekly,
        overrides=rules.overrides,
        time_off=rules.time_off,
        first_date=first_date,
        last_date=last_date,
        read_on=today,
        limits=scheduling.Limits(
            per_day=provider.max_bookings_per_day, per_week=provider.max_bookings_per_week
        ),
        busy=rules.busy,
        full_name=provider.full_name,
    )


class KeptSchedules:
    """Schedules of listed providers by the reference they were asked for (handle, provider
    id or user id), the most recently used kept. Whoever uses one proves it current."""

    def __init__(self, max_entries: int = KEPT_SCHEDULES) -> None:
        self.max_entries = max_entries
        self._by_ref: OrderedDict[str, Schedule] = OrderedDict()

    def get(self, ref: str, *, now: datetime) -> Schedule | None:
        """The kept schedule, if one was read today (the provider's today)."""
        key = ref.lower()
        kept = self._by_ref.get(key)
        if kept is None or kept.read_on != now.astimezone(kept.zone).date():
            return None
        self._by_ref.move_to_end(key)
        return kept

    async def fresh(self, session: AsyncSession, ref: str, *, now: datetime) -> Schedule:
        """Read from the database (ProviderNotFound if unknown or not listed), and kept."""
        key = ref.lower()
        self._by_ref.pop(key, None)
        # The profile and its account as they are now, even if this session loaded them.
        query = providers_repo.by_ref(ref).execution_options(populate_existing=True)
        provider = await session.scalar(query)
        if provider is None or not providers_service.is_listed(provider):
            raise providers_service.ProviderNotFound()
        schedule = await read(session, provider, now=now)
        self._by_ref[key] = schedule
        while len(self._by_ref) > self.max_entries:
            self._by_ref.popitem(last=False)
        return schedule

    def forget(self, ref: str) -> None:
        self._by_ref.pop(ref.lower(), None)

    def __len__(self) -> int:
        return len(self._by_ref)
