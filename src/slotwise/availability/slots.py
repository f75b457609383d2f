"""The slot use case: a provider's schedule and busy time, given to the pure engine.

The schedule is kept per worker and proven current by the statement that reads the busy
time (`schedules`); the listing's answer is kept too, until anything it was computed from
changes (`cache`, `changes`), except its bookings: a booking's change is applied to it
(`SlotListings.revised`), computed by the same functions as a fresh answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util import greenlet_spawn
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from slotwise import scheduling
from slotwise.availability import busy as busy_time
from slotwise.availability.busy import BusyReader, Moved
from slotwise.availability.cache import Basis, SlotAnswer, SlotCache, SlotKey
from slotwise.availability.changes import PostgresListener, SqliteWatch
from slotwise.availability.schedules import (
    KeptSchedules,
    ProviderRules,
    Schedule,
    rules_for,
    service_spec,
)
from slotwise.availability.schedules import read as read_schedule
from slotwise.availability.schemas import SlotQuery, SlotsRead
from slotwise.db import Database, lone_read
from slotwise.errors import InvalidInput
from slotwise.providers import service as providers_service
from slotwise.providers.models import Provider

# Read by booking.terms, which computes the same slots for its checks.
__all__ = ["SlotListings", "rules_for", "service_spec", "window"]

MAX_WINDOW_DAYS = 62
T = TypeVar("T")


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


class SlotListings:
    """Slot listings as JSON bodies, answered from this worker's cache when nothing they
    depend on has changed (see `slotwise.availability.cache` and `.changes`)."""

    def __init__(
        self,
        database: Database,
        cache: SlotCache,
        busy: BusyReader,
        schedules: KeptSchedules | None = None,
    ) -> None:
        self.db = database
        self.cache = cache
        # A listing from a kept schedule is one statement (three with day or week limits
        # or sessions' seats), run on a bare connection (no ORM session), each statement
        # a transaction of its own (``db.lone_read``), which spares the BEGIN and ROLLBACK
        # round trips (on SQLite, trips to aiosqlite's thread). Each sees its own snapshot:
        # a change between them is one the slot cache hears of (``SlotCache.mark``). Set on
        # the connection, not as an engine's option: an engine with options has a
        # listener, and an engine with any listener dispatches events at every statement.
        self._lone_read = lone_read(database.engine.dialect.name)
        self.busy = busy
        self.schedules = schedules if schedules is not None else KeptSchedules()
        # Listings being computed: a burst of requests for one that is not cached waits for
        # one computation instead of each running its own.
        self._computing: dict[SlotKey, asyncio.Future[SlotAnswer | None]] = {}
        self.watch: SqliteWatch | PostgresListener | None = None
        url = make_url(database.url)
        if database.is_sqlite:
            if url.database and url.database != ":memory:":
                self.watch = SqliteWatch(url.database, cache, busy.taken)
        else:
            self.watch = PostgresListener(database.url, cache, busy.taken)

    async def body(self, ref: str, query: SlotQuery, now: datetime) -> bytes:
        """The listing of the provider `ref` (handle, id or user id), as it is at `now`."""
        return (await self.answer(ref, query, now)).body(now)

    async def answer(self, ref: str, query: SlotQuery, now: datetime) -> SlotAnswer:
        """The listing's answer, current at `now` (its `body(now)` is the response)."""
        key = self._key(ref, query)
        usable = self.cache.max_bytes > 0 and self.watch is not None and self.watch.ready()
        if not usable:
            return await self._answer(ref, key, now)
        answer = self.cache.get(key, lambda kept, moves: self.revised(kept, moves, now))
        if answer is not None and not answer.holds_at(now):
            answer = None  # a guest's hold it counted has ended: the time is free again
        if answer is None and key in self._computing:
            answer = await asyncio.shield(self._computing[key])
            if answer is not None and not (self.cache.is_current(answer) and answer.holds_at(now)):
                answer = None  # something changed while it was computed: it may have missed it
        if answer is not None:
            return answer
        computing = self._computing[key] = asyncio.get_running_loop().create_future()
        answer = None
        try:
            answer = await self._answer(ref, key, now)
            self.cache.put(key, answer)
        finally:
            if self._computing.get(key) is computing:
                del self._computing[key]
            computing.set_result(answer)  # None on an error: the waiters try themselves
        return answer

    async def _answer(self, ref: str, key: SlotKey, now: datetime) -> SlotAnswer:
        """Computed from the database, marked before its first read (see SlotCache.mark):
        from the kept schedule if the statement that reads the busy time proves it current,
        else from the schedule read again."""
        marked_at = self.cache.mark()
        schedule = self.schedules.get(ref, now=now)
        if schedule is not None and _offers(schedule, key):
            answer, version = await self._compute(None, schedule, key, marked_at, now)
            if version == schedule.version:
                return answer
        async with self.db.session(writes=False) as session:
            schedule = await self.schedules.fresh(session, ref, now=now)
            answer, _version = await self._compute(session, schedule, key, marked_at, now)
            return answer

    async def body_for(
        self, session: AsyncSession, provider: Provider, query: SlotQuery, now: datetime
    ) -> bytes:
        """The listing of a provider already loaded (your own profile): not cached."""
        key = self._key(str(provider.id), query)
        marked_at = self.cache.mark()
        schedule = await read_schedule(session, provider, now=now)
        answer, _version = await self._compute(session, schedule, key, marked_at, now)
        return answer.body(now)

    async def _compute(
        self,
        session: AsyncSession | None,
        schedule: Schedule,
        key: SlotKey,
        marked_at: int,
        now: datetime,
    ) -> tuple[SlotAnswer, int | None]:
        """The open slots, before the booking policy (the answer cuts them to notice and
        horizon at each request's `now`, `scheduling.bookable_range`), and the provider's
        rules version read with the busy time; in ``session``, or on a connection of its
        own (no more is open at a time)."""
        spec = _spec(schedule, key)
        if schedule.covers(key.first, key.last):
            rules = ProviderRules(
                schedule.weekly, schedule.overrides, schedule.time_off, schedule.busy
            )
        elif session is not None:
            rules = await rules_for(
                session, schedule.provider_id, key.first, key.last, zone=schedule.zone
            )
        else:  # a window the kept hours do not reach (past dates, beyond the horizon)
            async with self.db.session(writes=False) as reading:
                rules = await rules_for(
                    reading, schedule.provider_id, key.first, key.last, zone=schedule.zone
                )
        opened: list[scheduling.Interval] = []
        if schedule.accepting_bookings:
            opened = scheduling.open_hours(
                zone=schedule.zone,
                start_date=key.first,
                end_date=key.last,
                weekly=rules.weekly,
                overrides=rules.overrides,
                time_off=rules.time_off,
                service=spec,
            )
        # Busy time elsewhere cannot move a slot, and a day's bookings mostly lie in its
        # hours: the listing reads only what can matter (none open: no busy time, but the
        # statement still reads the rules version).
        reach = scheduling.busy_reach(opened, spec)
        start_at, end_at = (reach.start_at, reach.end_at) if reach is not None else (now, now)
        counted = _counted(schedule, key) if reach is not None else None
        read = partial(
            self.busy.read,
            provider_id=schedule.provider_id,
            start_at=start_at,
            end_at=end_at,
            now=now,
            counted=counted,
            sessions_of=key.service_id if spec.capacity > 1 else None,
        )
        if session is not None:
            busy = await session.run_sync(lambda sync_session: read(sync_session.connection()))
        else:
            busy = await _on_own_connection(self.db.engine, read, self._lone_read)
        calendar_busy: tuple[scheduling.Interval, ...] = ()
        if reach is not None:
            calendar_busy = tuple(one for one in rules.busy if one.overlaps(reach))
        basis = Basis(schedule, spec, opened, reach, counted, busy.taken, calendar_busy)
        return _answer_of(key, basis, now, marked_at), busy.rules_version

    def revised(self, answer: SlotAnswer, moves: list[Moved], now: datetime) -> SlotAnswer:
        """``answer`` with bookings' changes applied: what it counted, with each changed
        appointment as the change left it, computed as a fresh answer is."""
        basis = answer.basis
        taken = dict(basis.taken)
        for move in moves:
            named = busy_time.key(move.appointment_id)
            if move.taken is not None and basis.concerns(move.taken):
                taken[named] = move.taken
            else:
                taken.pop(named, None)
        basis = Basis(
            basis.schedule,
            basis.spec,
            basis.opened,
            basis.reach,
            basis.counted,
            taken,
            basis.calendar_busy,
        )
        known = dict(
            zip(zip(answer.starts_at, answer.seats_left, strict=True), answer.items, strict=True)
        )
        return _answer_of(answer.key, basis, now, answer.marked_at, known, answer)

    async def aclose(self) -> None:
        if self.watch is not None:
            await self.watch.aclose()

    @staticmethod
    def _key(ref: str, query: SlotQuery) -> SlotKey:
        first, last = window(query.on_date, query.first, query.last)
        return SlotKey(ref, first, last, query.service_id, query.slot_duration, query.tz)


async def _on_own_connection(
    engine: AsyncEngine, read: Callable[[Connection], T], options: dict[str, Any]
) -> T:
    """``read`` on a connection of the engine's pool (with these execution ``options``),
    checked out, used and handed back in one pass through SQLAlchemy's greenlet.
    `async with engine.connect()` passes three times (check-out, statement, return) and
    shields the return in a task of its own: on PostgreSQL a tenth of a listing's CPU
    (docs/benchmarks.md). The pool and its check-out events are the same; a failure or a
    cancellation inside ``read`` still returns the connection (the `with` block)."""
    return await greenlet_spawn(_checked_out, engine.sync_engine, read, options)


def _checked_out(engine: Engine, read: Callable[[Connection], T], options: dict[str, Any]) -> T:
    with engine.connect() as connection:
        connection.execution_options(**options)
        return read(connection)


def _counted(schedule: Schedule, key: SlotKey) -> tuple[datetime, datetime] | None:
    """The instants whose bookings the provider's day and week limits count for the
    window's dates: its whole weeks, Monday to Sunday (None: no such limit)."""
    limits = schedule.limits
    if limits.per_day is None and limits.per_week is None:
        return None
    weeks = scheduling.day_extent(key.first - timedelta(days=key.first.weekday()), schedule.zone)
    after = key.last + timedelta(days=7 - key.last.weekday())
    return weeks.start_at, scheduling.day_extent(after, schedule.zone).start_at


def _answer_of(
    key: SlotKey,
    basis: Basis,
    now: datetime,
    marked_at: int,
    known: dict[tuple[datetime, int | None], bytes] | None = None,
    before: SlotAnswer | None = None,
) -> SlotAnswer:
    """The answer computed from ``basis``: the JSON of each slot (``known``: that of slots an
    earlier answer of the same key had, by start and seats left) between the head and tail
    of the body (``before``'s, when it is an earlier answer of the same key: they do not
    depend on busy time)."""
    schedule, spec, reach = basis.schedule, basis.spec, basis.reach
    offered: list[tuple[scheduling.Slot, int | None]] = []
    until = None
    if reach is not None:
        taken = basis.taken.values()
        spans = [
            scheduling.Interval(start, end)
            for start, end in busy_time.spans(taken, reach.start_at, reach.end_at, now)
        ]
        started = busy_time.starts(taken, basis.counted) if basis.counted is not None else []
        if spec.capacity > 1 and key.service_id is not None:  # a group service's sessions
            seated = busy_time.sessions(taken, key.service_id, reach.start_at, reach.end_at, now)
            offered = _seated(
                schedule, basis.opened, spans, basis.calendar_busy, seated, started, spec
            )
        else:
            spans += basis.calendar_busy  # the provider's own calendars: busy as bookings
            found = scheduling.slots_within(basis.opened, busy=spans, service=spec, now=None)
            if started:  # the dates a day or week limit closes are not offered
                full = scheduling.full_dates(schedule.limits, schedule.zone, started)
                found = [slot for slot in found if schedule.local_date(slot.start_at) not in full]
            offered = [(slot, None) for slot in found]
        until = busy_time.first_hold_end(taken, reach.start_at, reach.end_at, now)
    if not known:
        items = _items(schedule, key, offered)
    else:  # a slot's JSON depends on its start and seats only: serialise only the new ones
        fresh = [one for one in offered if (one[0].start_at, one[1]) not in known]
        serialised = _items(schedule, key, fresh)
        known = known | {
            (slot.start_at, left): item
            for (slot, left), item in zip(fresh, serialised, strict=True)
        }
        items = [known[slot.start_at, left] for slot, left in offered]
    if before is not None:
        head, tail = before.head, before.tail
    else:
        head, tail = _frame(schedule, key, spec)
    return SlotAnswer(
        key=key,
        provider_id=schedule.provider_id,
        user_id=schedule.user_id,
        policy=schedule.policy,
        starts_at=[slot.start_at for slot, _left in offered],
        seats_left=[left for _slot, left in offered],
        head=head,
        items=items,
        tail=tail,
        marked_at=marked_at,
        until=until,
        basis=basis,
    )


def _items(
    schedule: Schedule, key: SlotKey, offered: list[tuple[scheduling.Slot, int | None]]
) -> list[bytes]:
    zone = schedule.zone
    client_zone = ZoneInfo(key.tz) if key.tz else None
    items: list[_SlotJson] = []
    for slot, left in offered:
        local_start = slot.start_at.astimezone(zone)
        items.append(
            {
                "start_at": local_start,
                "end_at": slot.end_at.astimezone(zone),
                "date": local_start.date(),
                "client_start_at": slot.start_at.astimezone(client_zone) if client_zone else None,
                "client_end_at": slot.end_at.astimezone(client_zone) if client_zone else None,
                "seats_left": left,
            }
        )
    return _each_json(items)


def _frame(schedule: Schedule, key: SlotKey, spec: scheduling.ServiceSpec) -> tuple[bytes, bytes]:
    """The body around the slots: everything before the list's items, and after."""
    empty = (
        SlotsRead.model_construct(
            provider_id=schedule.provider_id,
            public_handle=schedule.public_handle,
            timezone=schedule.timezone,
            client_timezone=key.tz,
            service_id=key.service_id,
            duration_minutes=int(spec.duration.total_seconds() // 60),
            capacity=spec.capacity,
            from_date=key.first,
            to_date=key.last,
            slots=[],
        )
        .model_dump_json()
        .encode()
    )
    split_at = empty.rindex(b"[]") + 1  # the slots go between the brackets: the last field
    return empty[:split_at], empty[split_at:]


def _spec(schedule: Schedule, key: SlotKey) -> scheduling.ServiceSpec:
    """What the listing offers: the service asked for (an active one of the provider's),
    or the default session, of the length asked for if any."""
    if key.service_id is None:
        return service_spec(schedule, None, key.slot_duration)
    found = schedule.services.get(key.service_id)
    if found is None:
        raise providers_service.ServiceNotFound()
    return found


class _SlotJson(TypedDict):
    """SlotRead's fields, as a dict: serialised like the model, without building one each."""

    start_at: datetime
    end_at: datetime
    date: date
    client_start_at: datetime | None
    client_end_at: datetime | None
    seats_left: int | None


_SLOT_LIST = TypeAdapter(list[_SlotJson])


def _each_json(items: list[_SlotJson]) -> list[bytes]:
    """The JSON of each slot, from one serialisation of them all (hundreds of separate
    ones cost several milliseconds). A slot's JSON holds dates, times and nulls only, never
    a brace, so the objects are split at the `},{` between them."""
    if not items:
        return []
    parts = _SLOT_LIST.dump_json(items)[2:-2].split(b"},{")
    return [b"{" + part + b"}" for part in parts]


def _seated(
    schedule: Schedule,
    opened: list[scheduling.Interval],
    spans: list[scheduling.Interval],
    calendar_busy: tuple[scheduling.Interval, ...],
    seated: list[busy_time.Seated],
    started: list[datetime],
    spec: scheduling.ServiceSpec,
) -> list[tuple[scheduling.Slot, int | None]]:
    """A group service's slots and their free seats: those free of other busy time, the
    seats of its sessions aside (`scheduling.open_seats`). A date a day or week limit closes
    keeps its sessions that have seats left: joining one adds no session."""
    sessions = [
        scheduling.Session(
            one.start_at, scheduling.Interval(one.blocked_start_at, one.blocked_end_at), one.taken
        )
        for one in seated
    ]
    # The calendars' busy time is not a seat: added after the seats are taken out.
    others = [*scheduling.outside_sessions(spans, sessions), *calendar_busy]
    free = scheduling.slots_within(opened, busy=others, service=spec, now=None)
    offered = scheduling.open_seats(free, sessions, spec)
    if started:
        full = scheduling.full_dates(schedule.limits, schedule.zone, started)
        joinable = {session.start_at for session in sessions}
        offered = [
            seats
            for seats in offered
            if seats.slot.start_at in joinable
            or schedule.local_date(seats.slot.start_at) not in full
        ]
    return [(seats.slot, seats.seats_left) for seats in offered]


def _offers(schedule: Schedule, key: SlotKey) -> bool:
    """Whether a kept schedule has the service asked for: one it lacks may be newer than it
    (read afresh before it is refused)."""
    return key.service_id is None or key.service_id in schedule.services
