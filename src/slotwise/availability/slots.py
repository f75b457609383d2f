"""The slot use case: load a provider's rules and busy time, ask the pure engine."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from slotwise import scheduling
from slotwise.availability import repository
from slotwise.availability.cache import SlotAnswer, SlotCache, SlotKey
from slotwise.availability.changes import PostgresListener, SqliteWatch
from slotwise.availability.models import DateOverride, TimeOff, WeeklyPattern
from slotwise.availability.schemas import SlotQuery, SlotsRead
from slotwise.booking import repository as booking_repo
from slotwise.db import Database
from slotwise.errors import InvalidInput
from slotwise.providers import service as providers_service
from slotwise.providers.models import Provider, Service

MAX_WINDOW_DAYS = 62


class InvalidWindow(InvalidInput):
    code = "invalid_window"
    message = "Give date, or from (and optionally to) with to not before from."


class ProviderRequired(InvalidInput):
    code = "provider_id_required"
    message = "Give provider_id (or the seeds' tutor_id / doctor_id)."


class WindowTooLong(InvalidInput):
    code = "window_too_long"
    message = f"A slot query spans at most {MAX_WINDOW_DAYS} days."


def window(on_date: date | None, first: date | None, last: date | None) -> tuple[date, date]:
    if on_date is not None:
        if first is not None or last is not None:
            raise InvalidWindow("Give either date or from/to, not both.")
        return on_date, on_date
    if first is None:
        raise InvalidWindow()
    last = last or first
    if last < first:
        raise InvalidWindow("to is before from.")
    if (last - first).days + 1 > MAX_WINDOW_DAYS:
        raise WindowTooLong(details={"max_days": MAX_WINDOW_DAYS})
    return first, last


def service_spec(
    provider: Provider, service: Service | None, duration_minutes: int | None
) -> scheduling.ServiceSpec:
    """The engine's view of what is booked: a service, or the profile's default session."""
    if service is not None:
        return scheduling.ServiceSpec(
            duration=timedelta(minutes=service.duration_minutes),
            buffer_before=timedelta(minutes=service.buffer_before_minutes),
            buffer_after=timedelta(minutes=service.buffer_after_minutes),
            interval=_minutes(service.slot_interval_minutes or provider.slot_interval_minutes),
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


def policy_of(provider: Provider) -> scheduling.BookingPolicy:
    return scheduling.BookingPolicy(
        min_notice=timedelta(minutes=provider.min_notice_minutes),
        max_advance=timedelta(days=provider.max_advance_days),
    )


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


async def busy_intervals(
    session: AsyncSession,
    *,
    provider_id: uuid.UUID,
    start_at: datetime,
    end_at: datetime,
    now: datetime,
) -> tuple[list[scheduling.Interval], datetime | None]:
    """Provider time already taken at ``now``: active appointments and held guest bookings,
    widened by their buffers; and when the first of those holds ends (None: none)."""
    busy = await booking_repo.busy_between(session, provider_id, start_at, end_at, now=now)
    return [scheduling.Interval(start, end) for start, end in busy.spans], busy.until


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """A provider's hours for some dates, as the engine takes them."""

    weekly: list[scheduling.WeeklyRule]
    overrides: list[scheduling.DateOverride]
    time_off: list[scheduling.TimeOff]


async def rules_for(
    session: AsyncSession, provider_id: uuid.UUID, start_date: date, end_date: date
) -> ProviderRules:
    patterns = await repository.patterns_for(session, provider_id, active_only=True)
    overrides = await repository.overrides_between(session, provider_id, start_date, end_date)
    time_off = await repository.time_off_between(session, provider_id, start_date, end_date)
    return ProviderRules(
        weekly_rules(patterns), override_rules(overrides), time_off_rules(time_off)
    )


async def open_slots(
    session: AsyncSession,
    *,
    provider: Provider,
    start_date: date,
    end_date: date,
    service: Service | None,
    duration_minutes: int | None,
    now: datetime,
) -> tuple[list[scheduling.Slot], datetime | None]:
    """The open slots, before the booking policy: the caller cuts them to notice and horizon
    at its own `now` (`scheduling.bookable_range`), so they can be kept until the first
    guest's hold among the busy time ends (the second value; None: no hold)."""
    if not provider.accepting_bookings:
        return [], None
    zone = ZoneInfo(provider.timezone)
    rules = await rules_for(session, provider.id, start_date, end_date)
    # The busy time that matters: the local days asked for, widened by the largest buffer
    # (4 hours) and a DST shift at midnight.
    margin = timedelta(hours=6)
    window_start = datetime.combine(start_date, time(), zone) - margin
    window_end = datetime.combine(end_date + timedelta(days=1), time(), zone) + margin
    busy, until = await busy_intervals(
        session, provider_id=provider.id, start_at=window_start, end_at=window_end, now=now
    )
    found = scheduling.compute_slots(
        zone=zone,
        start_date=start_date,
        end_date=end_date,
        weekly=rules.weekly,
        overrides=rules.overrides,
        time_off=rules.time_off,
        busy=busy,
        service=service_spec(provider, service, duration_minutes),
        now=None,
    )
    full = await _full_dates(session, provider, zone, start_date, end_date)
    if full:
        found = [slot for slot in found if slot.start_at.astimezone(zone).date() not in full]
    return found, until


async def _full_dates(
    session: AsyncSession, provider: Provider, zone: ZoneInfo, start_date: date, end_date: date
) -> set[date]:
    """The dates the provider's booking limits close (none without a day or week limit)."""
    limits = scheduling.Limits(
        per_day=provider.max_bookings_per_day, per_week=provider.max_bookings_per_week
    )
    if limits.per_day is None and limits.per_week is None:
        return set()
    monday = start_date - timedelta(days=start_date.weekday())
    after_sunday = end_date + timedelta(days=7 - end_date.weekday())
    starts = await booking_repo.starts_between(
        session,
        provider.id,
        scheduling.day_extent(monday, zone).start_at,
        scheduling.day_extent(after_sunday, zone).start_at,
    )
    return scheduling.full_dates(limits, zone, starts)


class SlotListings:
    """Slot listings as JSON bodies, answered from this worker's cache when nothing they
    depend on has changed (see `slotwise.availability.cache` and `.changes`)."""

    def __init__(self, database: Database, cache: SlotCache) -> None:
        self.db = database
        self.cache = cache
        # Listings being computed: a burst of requests for one that is not cached waits for
        # one computation instead of each running its own.
        self._computing: dict[SlotKey, asyncio.Future[SlotAnswer | None]] = {}
        self.watch: SqliteWatch | PostgresListener | None = None
        url = make_url(database.url)
        if database.is_sqlite:
            if url.database and url.database != ":memory:":
                self.watch = SqliteWatch(url.database, cache)
        else:
            self.watch = PostgresListener(database.url, cache)

    async def body(self, ref: str, query: SlotQuery, now: datetime) -> bytes:
        """The listing of the provider `ref` (handle, id or user id), as it is at `now`."""
        key = self._key(ref, query)
        usable = self.cache.max_bytes > 0 and self.watch is not None and self.watch.ready()
        if not usable:
            return (await self._answer(ref, key, now)).body(now)
        answer = self.cache.get(key)
        if answer is not None and not answer.holds_at(now):
            answer = None  # a guest's hold it counted has ended: the time is free again
        if answer is None and key in self._computing:
            answer = await asyncio.shield(self._computing[key])
            if answer is not None and not (self.cache.is_current(answer) and answer.holds_at(now)):
                answer = None  # something changed while it was computed: it may have missed it
        if answer is not None:
            return answer.body(now)
        computing = self._computing[key] = asyncio.get_running_loop().create_future()
        answer = None
        try:
            answer = await self._answer(ref, key, now)
            self.cache.put(key, answer)
        finally:
            if self._computing.get(key) is computing:
                del self._computing[key]
            computing.set_result(answer)  # None on an error: the waiters try themselves
        return answer.body(now)

    async def _answer(self, ref: str, key: SlotKey, now: datetime) -> SlotAnswer:
        """Computed from the database, marked before its first read (see SlotCache.mark)."""
        marked_at = self.cache.mark()
        async with self.db.session(writes=False) as session:
            provider = await providers_service.get_public(session, ref=ref)
            return await _compute(session, provider, key, marked_at, now)

    async def body_for(
        self, session: AsyncSession, provider: Provider, query: SlotQuery, now: datetime
    ) -> bytes:
        """The listing of a provider already loaded (your own profile): not cached."""
        key = self._key(str(provider.id), query)
        return (await _compute(session, provider, key, self.cache.mark(), now)).body(now)

    async def aclose(self) -> None:
        if self.watch is not None:
            await self.watch.aclose()

    @staticmethod
    def _key(ref: str, query: SlotQuery) -> SlotKey:
        first, last = window(query.on_date, query.first, query.last)
        return SlotKey(ref, first, last, query.service_id, query.slot_duration, query.tz)


async def _compute(
    session: AsyncSession, provider: Provider, key: SlotKey, marked_at: int, now: datetime
) -> SlotAnswer:
    offered = None
    if key.service_id is not None:
        offered = await providers_service.get_service(
            session, provider=provider, service_id=key.service_id, active_only=True
        )
    found, until = await open_slots(
        session,
        provider=provider,
        start_date=key.first,
        end_date=key.last,
        service=offered,
        duration_minutes=key.slot_duration,
        now=now,
    )
    zone = ZoneInfo(provider.timezone)
    client_zone = ZoneInfo(key.tz) if key.tz else None
    spec = service_spec(provider, offered, key.slot_duration)
    items: list[_SlotJson] = []
    for slot in found:
        local_start = slot.start_at.astimezone(zone)
        items.append(
            {
                "start_at": local_start,
                "end_at": slot.end_at.astimezone(zone),
                "date": local_start.date(),
                "client_start_at": slot.start_at.astimezone(client_zone) if client_zone else None,
                "client_end_at": slot.end_at.astimezone(client_zone) if client_zone else None,
            }
        )
    empty = (
        SlotsRead.model_construct(
            provider_id=provider.id,
            public_handle=provider.public_handle,
            timezone=provider.timezone,
            client_timezone=key.tz,
            service_id=offered.id if offered else None,
            duration_minutes=int(spec.duration.total_seconds() // 60),
            from_date=key.first,
            to_date=key.last,
            slots=[],
        )
        .model_dump_json()
        .encode()
    )
    split_at = empty.rindex(b"[]") + 1  # the slots go between the brackets: the last field
    return SlotAnswer(
        provider_id=provider.id,
        user_id=provider.user_id,
        policy=policy_of(provider),
        starts_at=[slot.start_at for slot in found],
        head=empty[:split_at],
        items=_each_json(items),
        tail=empty[split_at:],
        marked_at=marked_at,
        until=until,
    )


class _SlotJson(TypedDict):
    """SlotRead's fields, as a dict: serialised like the model, without building one each."""

    start_at: datetime
    end_at: datetime
    date: date
    client_start_at: datetime | None
    client_end_at: datetime | None


_SLOT_LIST = TypeAdapter(list[_SlotJson])


def _each_json(items: list[_SlotJson]) -> list[bytes]:
    """The JSON of each slot, from one serialisation of them all (hundreds of separate
    ones cost several milliseconds). A slot's JSON holds dates, times and nulls only, never
    a brace, so the objects are split at the `},{` between them."""
    if not items:
        return []
    parts = _SLOT_LIST.dump_json(items)[2:-2].split(b"},{")
    return [b"{" + part + b"}" for part in parts]
