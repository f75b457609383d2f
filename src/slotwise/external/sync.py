"""A sync: a calendar read (outside any transaction), expanded to busy time, and the busy
time stored if it changed, with how the sync went.

Each step is as short as it can be: a read of the calendar's row, the fetch (no
transaction open: a slow calendar holds no lock and no connection), the expansion (in a
thread: thousands of events are CPU work), and one write transaction that locks the
calendar's row, compares the busy time with what is stored and writes only the
difference. So a sync that finds nothing new writes no busy row: no rules version is
raised, no kept listing or kept terms are voided. A failed sync (a fetch refused, an error
status, a file that cannot be read) records why and keeps the busy time of the last good
one; a calendar failing for ``pause_after`` is paused and its provider emailed, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.availability import changes
from slotwise.availability.models import CalendarBusy
from slotwise.calendars.service import Appointments
from slotwise.db import Database, insert_rows, table_of
from slotwise.external import caldav_source, expand, push
from slotwise.external.fetch import NOT_MODIFIED, Fetched, FetchFailed, fetch
from slotwise.external.keys import CalendarKeys, UnreadableSecret
from slotwise.external.models import ExternalCalendar, Kind, Standing, SyncStatus
from slotwise.notifications import outbox
from slotwise.outbound import OutboundGuard
from slotwise.providers import repository as providers_repo
from slotwise.providers.models import Provider
from slotwise.users.models import User

log = structlog.get_logger(__name__)

# Busy time is kept from the provider's yesterday to a day past its horizon (zones, and a
# booking decided near midnight); the window moves a day at a time, so a calendar that does
# not change writes nothing from one sync to the next within a day.
MARGIN = timedelta(days=1)
_DELETE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """What a sync needs of the settings."""

    guard: OutboundGuard  # its size cap: SLOTWISE_CALENDAR_MAX_BYTES
    keys: CalendarKeys
    every: timedelta
    pause_after: timedelta
    default_timezone: str
    # What a push of bookings reads (booking.publish.CalendarAppointments, wired in by the
    # app factory and the worker command); None: bookings are not written out.
    appointments: Appointments | None = None

    @classmethod
    def of(
        cls,
        *,
        guard: OutboundGuard,
        keys: CalendarKeys,
        max_bytes: int,
        sync_minutes: float,
        pause_after_hours: float,
        default_timezone: str,
        appointments: Appointments | None = None,
    ) -> SyncPolicy:
        return cls(
            guard=replace(guard, max_response_bytes=max_bytes),
            keys=keys,
            every=timedelta(minutes=sync_minutes),
            pause_after=timedelta(hours=pause_after_hours),
            default_timezone=default_timezone,
            appointments=appointments,
        )


@dataclass(frozen=True, slots=True)
class Window:
    first_date: date
    last_date: date
    start_at: datetime
    end_at: datetime

    @property
    def key(self) -> str:
        return f"{self.first_date}/{self.last_date}"


def window(zone: ZoneInfo, max_advance_days: int, now: datetime) -> Window:
    """The provider's dates whose busy time is kept: yesterday to a day past the horizon."""
    today = now.astimezone(zone).date()
    first_date = today - MARGIN
    try:
        last_date = today + timedelta(days=max_advance_days) + MARGIN
    except OverflowError:
        last_date = date.max
    return Window(
        first_date,
        last_date,
        scheduling.day_extent(first_date, zone).start_at,
        scheduling.day_extent(last_date, zone).end_at,
    )


@dataclass(frozen=True, slots=True)
class _Read:
    """What the source gave: busy time (None: as the last good sync had it) and the
    validators and digest to keep."""

    busy: expand.Busy | None
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None


class SyncError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def sync(
    db: Database, calendar_id: uuid.UUID, *, policy: SyncPolicy, now: datetime
) -> ExternalCalendar | None:
    """Sync one calendar now (None if it is gone): its busy time read, and, for the calendar
    that receives the provider's bookings, those written (``push``); the row as the sync
    left it."""
    synced = await _synced(db, calendar_id, policy=policy, now=now)
    if synced is None or not synced.write_bookings or policy.appointments is None:
        return synced
    await push.push(
        db,
        calendar_id,
        appointments=policy.appointments,
        guard=policy.guard,
        keys=policy.keys,
        now=now,
    )
    async with db.transaction(writes=False) as session:
        return await session.get(ExternalCalendar, calendar_id)


async def _synced(
    db: Database, calendar_id: uuid.UUID, *, policy: SyncPolicy, now: datetime
) -> ExternalCalendar | None:
    async with db.transaction(writes=False) as session:
        calendar = await session.get(ExternalCalendar, calendar_id)
        provider = await session.get(Provider, calendar.provider_id) if calendar else None
    if calendar is None or provider is None:
        return None
    zone = ZoneInfo(provider.timezone)
    span = window(zone, provider.max_advance_days, now)
    try:
        read = await _read(calendar, zone, span, policy)
    except SyncError as failed:
        log.info("calendar_sync_failed", calendar_id=str(calendar_id), reason=failed.reason)
        return await _record_failure(db, calendar_id, failed.reason, policy=policy, now=now)
    return await _record_success(db, calendar_id, read, span, policy=policy, now=now)


async def _read(
    calendar: ExternalCalendar, zone: ZoneInfo, span: Window, policy: SyncPolicy
) -> _Read:
    try:
        secret = policy.keys.open(calendar.secret)
    except UnreadableSecret as exc:
        raise SyncError(str(exc)) from exc
    same_window = calendar.synced_window == span.key and calendar.sync_status == SyncStatus.OK
    if calendar.kind == Kind.CALDAV:
        try:
            data = await caldav_source.busy_ics(
                policy.guard, secret, start_at=span.start_at, end_at=span.end_at
            )
        except caldav_source.CaldavFailed as failed:
            raise SyncError(failed.reason) from failed
        return await _expanded(calendar, data, zone, span, same_window)
    try:
        fetched = await fetch(
            policy.guard,
            secret["url"],
            etag=calendar.etag if same_window else None,
            last_modified=calendar.last_modified if same_window else None,
        )
    except FetchFailed as failed:
        raise SyncError(failed.reason) from failed
    if fetched is NOT_MODIFIED:
        return _Read(None, calendar.etag, calendar.last_modified, calendar.content_hash)
    assert isinstance(fetched, Fetched)
    read = await _expanded(calendar, fetched.body, zone, span, same_window)
    return replace(read, etag=fetched.etag, last_modified=fetched.last_modified)


async def _expanded(
    calendar: ExternalCalendar, data: bytes, zone: ZoneInfo, span: Window, same_window: bool
) -> _Read:
    digest = hashlib.sha256(data).hexdigest()
    if same_window and digest == calendar.content_hash:
        return _Read(None, content_hash=digest)  # the same file for the same dates
    try:
        busy = await asyncio.to_thread(
            expand.busy_time,
            data,
            zone=zone,
            start_at=span.start_at,
            end_at=span.end_at,
            tentative_busy=calendar.tentative_busy,
        )
    except expand.Unreadable as exc:
        raise SyncError(str(exc)[:500]) from exc
    return _Read(busy, content_hash=digest)


async def _locked(session: AsyncSession, calendar_id: uuid.UUID) -> ExternalCalendar | None:
    return await session.scalar(
        select(ExternalCalendar)
        .where(ExternalCalendar.id == calendar_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _record_success(
    db: Database,
    calendar_id: uuid.UUID,
    read: _Read,
    span: Window,
    *,
    policy: SyncPolicy,
    now: datetime,
) -> ExternalCalendar | None:
    async with db.transaction(writes=True) as session:
        calendar = await _locked(session, calendar_id)
        if calendar is None:
            return None
        if read.busy is not None:
            await store(session, calendar, read.busy.intervals)
            calendar.event_count = read.busy.events
            calendar.synced_window = span.key
        calendar.etag = read.etag
        calendar.last_modified = read.last_modified
        calendar.content_hash = read.content_hash
        calendar.sync_status = SyncStatus.OK
        calendar.last_attempt_at = now
        calendar.last_success_at = now
        calendar.last_error = None
        calendar.failing_since = None
        calendar.status = Standing.ACTIVE  # a good sync resumes a paused calendar
        calendar.paused_at = None
        calendar.due_at = now + policy.every
        calendar.locked_until = None
        return calendar


async def store(
    session: AsyncSession, calendar: ExternalCalendar, intervals: tuple[scheduling.Interval, ...]
) -> bool:
    """The calendar's busy time made ``intervals``: the rows no longer found deleted, the
    new ones inserted, nothing written when nothing changed. Whether anything changed."""
    rows = await session.execute(
        select(CalendarBusy.id, CalendarBusy.start_at, CalendarBusy.end_at).where(
            CalendarBusy.calendar_id == calendar.id
        )
    )
    stored = {(row.start_at, row.end_at): row.id for row in rows}
    wanted = {(one.start_at, one.end_at) for one in intervals}
    gone = [row_id for span, row_id in stored.items() if span not in wanted]
    new = sorted(wanted - stored.keys())
    for start in range(0, len(gone), _DELETE_CHUNK):
        chunk = gone[start : start + _DELETE_CHUNK]
        await session.execute(delete(CalendarBusy).where(CalendarBusy.id.in_(chunk)))
    await insert_rows(
        session,
        [
            (
                table_of(CalendarBusy),
                [
                    {
                        "id": uuid.uuid4(),
                        "calendar_id": calendar.id,
                        "provider_id": calendar.provider_id,
                        "start_at": start_at,
                        "end_at": end_at,
                    }
                    for start_at, end_at in new
                ],
            )
        ],
    )
    changed = bool(gone or new)
    if changed:  # written with Core statements: this worker's slot cache is told at commit
        changes.note(session.sync_session, calendar.provider_id)
    return changed


async def _record_failure(
    db: Database, calendar_id: uuid.UUID, reason: str, *, policy: SyncPolicy, now: datetime
) -> ExternalCalendar | None:
    async with db.transaction(writes=True) as session:
        calendar = await _locked(session, calendar_id)
        if calendar is None:
            return None
        calendar.sync_status = SyncStatus.ERROR
        calendar.last_attempt_at = now
        calendar.last_error = reason
        calendar.failing_since = calendar.failing_since or now
        calendar.due_at = now + policy.every
        calendar.locked_until = None
        failing_for = now - calendar.failing_since
        if calendar.status is Standing.ACTIVE and failing_for >= policy.pause_after:
            calendar.status = Standing.PAUSED
            calendar.paused_at = now
            await _tell_provider(session, calendar, reason, policy=policy, now=now)
            log.warning("calendar_paused", calendar_id=str(calendar.id))
        return calendar


async def _tell_provider(
    session: AsyncSession,
    calendar: ExternalCalendar,
    reason: str,
    *,
    policy: SyncPolicy,
    now: datetime,
) -> None:
    owner = await session.scalar(
        select(User)
        .join(Provider, Provider.user_id == User.id)
        .where(Provider.id == calendar.provider_id)
    )
    if owner is None:
        return
    assert calendar.failing_since is not None
    await outbox.enqueue_calendar_paused(
        session,
        email=owner.email,
        name=owner.full_name,
        timezone=owner.timezone or policy.default_timezone,
        calendar=calendar.name or calendar.host,
        failing_since=calendar.failing_since,
        error=reason,
        now=now,
    )


async def sync_providers(
    db: Database, refs: Sequence[str], *, policy: SyncPolicy, now: datetime
) -> None:
    """Sync the calendars that are not paused of the providers ``refs`` name (ids, user ids
    or handles), all together: before a new time of theirs is placed, with
    ``SLOTWISE_CALENDAR_SYNC_BEFORE_BOOKING``. A calendar that fails keeps its last good
    busy time, and the booking goes on; a reference that names no provider is left to the
    booking to refuse."""
    async with db.transaction(writes=False) as session:
        provider_ids = []
        for ref in dict.fromkeys(refs):
            provider = await session.scalar(providers_repo.by_ref(ref))
            if provider is not None:
                provider_ids.append(provider.id)
        if not provider_ids:
            return
        found = await session.scalars(
            select(ExternalCalendar.id).where(
                ExternalCalendar.provider_id.in_(provider_ids),
                ExternalCalendar.status == Standing.ACTIVE,
            )
        )
        calendar_ids = list(found)
    await asyncio.gather(*(sync(db, one, policy=policy, now=now) for one in calendar_ids))
