"""Bookings out: a provider's confirmed bookings written into the one CalDAV calendar they
chose (``write_bookings``), as the same events their invitations and feed carry
(``calendars.ics``: UID ``<appointment id>@slotwise``, a series as one event with its rule,
a group session as one event with its attendees).

A push reconciles rather than replays: it computes the events the calendar should hold (the
provider's bookings from ``HISTORY`` ago on, those confirmed; a series or a session once any
occurrence or seat is) and compares each one's digest with what it last wrote
(``caldav_pushed``). An event new or changed is PUT at ``<uid>.ics`` (the same resource every
time: a retry or a second worker can never make a duplicate), one no longer wanted (cancelled,
declined, moved out of confirmation) is DELETEd (a 404 counts as done), one unchanged is left
alone. What failed is simply still different at the next push, which is the retry; events
that ended before the window are left as they are. Slotwise reads none of them back as busy
time (``expand`` skips its own UIDs): they are busy as appointments already.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking.facts import BookingFacts, SessionFacts, Status
from slotwise.calendars import entries, ics
from slotwise.calendars.service import Appointments
from slotwise.db import Database
from slotwise.external import caldav_source
from slotwise.external.keys import CalendarKeys, UnreadableSecret
from slotwise.external.models import ExternalCalendar, PushedEvent
from slotwise.outbound import OutboundGuard
from slotwise.providers.models import Provider
from slotwise.users.models import User

HISTORY = timedelta(days=90)  # as the calendar feed: what is ahead, and this much past
_DIGEST_STAMP = datetime(2000, 1, 1, tzinfo=UTC)  # DTSTAMP aside, the same event digests alike


@dataclass(frozen=True, slots=True)
class Wanted:
    uid: str
    calendar_entries: tuple[ics.CalendarEntry, ...]
    end_at: datetime

    @property
    def digest(self) -> str:
        text = ics.document(list(self.calendar_entries), stamp_at=_DIGEST_STAMP)
        return hashlib.sha256(text.encode()).hexdigest()

    def rendered(self, now: datetime) -> str:
        return ics.document(list(self.calendar_entries), stamp_at=now)


def wanted_events(
    found: list[BookingFacts | SessionFacts], provider_id: uuid.UUID
) -> dict[str, Wanted]:
    """The events the provider's calendar should hold, by UID."""
    series: dict[uuid.UUID, list[BookingFacts]] = {}
    events: dict[str, Wanted] = {}
    for one in found:
        if one.provider_id != provider_id:
            continue  # the provider's own bookings with others, as a client: not theirs
        if isinstance(one, SessionFacts):
            if one.status is Status.CONFIRMED:
                uid = ics.uid_for(one.session_key)
                events[uid] = Wanted(uid, (entries.session_entry(one),), one.end_at)
        elif one.series is not None:
            series.setdefault(one.series.series_id, []).append(one)
        elif one.status is Status.CONFIRMED:
            uid = ics.uid_for(one.appointment_id)
            events[uid] = Wanted(uid, (entries.entry(one),), one.end_at)
    for series_id, occurrences in series.items():
        if any(one.status is Status.CONFIRMED for one in occurrences):
            uid = ics.uid_for(series_id)
            events[uid] = Wanted(
                uid,
                tuple(entries.entry(one) for one in occurrences),
                max(one.end_at for one in occurrences),
            )
    return events


@dataclass(frozen=True, slots=True)
class _Plan:
    put: list[Wanted]
    removed: list[str]


def _written(
    secret: dict[str, Any],
    guard: OutboundGuard,
    loop: asyncio.AbstractEventLoop,
    plan: _Plan,
    now: datetime,
) -> tuple[list[Wanted], list[str], str | None]:
    """In caldav's thread: each PUT and DELETE; what was done, and the first failure."""
    dav = caldav_source.client(secret, guard, loop)
    base = str(caldav_source.calendar_of(dav, secret).url).rstrip("/") + "/"
    put: list[Wanted] = []
    removed: list[str] = []
    for event in plan.put:
        answer = dav.put(
            base + quote(event.uid) + ".ics",
            event.rendered(now),
            {"Content-Type": "text/calendar; charset=utf-8"},
        )
        if answer.status not in (200, 201, 204):
            return put, removed, f"PUT {event.uid}: HTTP {answer.status}"
        put.append(event)
    for uid in plan.removed:
        answer = dav.delete(base + quote(uid) + ".ics")
        if answer.status not in (200, 204, 404):
            return put, removed, f"DELETE {uid}: HTTP {answer.status}"
        removed.append(uid)
    return put, removed, None


async def push(
    db: Database,
    calendar_id: uuid.UUID,
    *,
    appointments: Appointments,
    guard: OutboundGuard,
    keys: CalendarKeys,
    now: datetime,
) -> str | None:
    """Bring the calendar's events up to date; the reason it failed, or None."""
    async with db.transaction(writes=False) as session:
        calendar = await session.get(ExternalCalendar, calendar_id)
        if calendar is None or not calendar.write_bookings:
            return None
        owner = await session.scalar(
            select(User)
            .join(Provider, Provider.user_id == User.id)
            .where(Provider.id == calendar.provider_id)
        )
        if owner is None:
            return None
        found = await appointments.of_user(session, user=owner, starting_from=now - HISTORY)
        stored = {
            row.uid: row
            for row in await session.scalars(
                select(PushedEvent).where(PushedEvent.calendar_id == calendar_id)
            )
        }
        secret = calendar.secret
    wanted = wanted_events(found, calendar.provider_id)
    plan = _Plan(
        put=[one for one in wanted.values() if _changed(stored.get(one.uid), one)],
        removed=[
            uid
            for uid, row in stored.items()
            if uid not in wanted and row.end_at >= now - HISTORY  # past ones are left be
        ],
    )
    error = None
    if plan.put or plan.removed:
        try:
            opened = keys.open(secret)
            loop = asyncio.get_running_loop()
            done, removed, error = await asyncio.to_thread(_written, opened, guard, loop, plan, now)
        except UnreadableSecret as exc:
            done, removed, error = [], [], str(exc)
        except Exception as exc:  # the server's or the guard's trouble: tried again next time
            done, removed, error = [], [], _reason(exc)
        await _record(db, calendar_id, done, removed, now)
    async with db.transaction(writes=True) as session:
        row = await session.get(ExternalCalendar, calendar_id, with_for_update=True)
        if row is not None:
            row.push_error = error
            if error is None:
                row.pushed_at = now
    return error


def _changed(stored: PushedEvent | None, wanted: Wanted) -> bool:
    return stored is None or stored.digest != wanted.digest


def _reason(exc: Exception) -> str:
    if isinstance(exc, caldav_source.CaldavFailed):
        return exc.reason
    failed = caldav_source.failure(exc)
    return failed.reason if failed is not None else f"{type(exc).__name__}: {exc}"[:500]


async def _record(
    db: Database, calendar_id: uuid.UUID, done: list[Wanted], removed: list[str], now: datetime
) -> None:
    async with db.transaction(writes=True) as session:
        await _forget(session, calendar_id, [*removed, *(one.uid for one in done)])
        for one in done:
            session.add(
                PushedEvent(
                    calendar_id=calendar_id,
                    uid=one.uid,
                    digest=one.digest,
                    end_at=one.end_at,
                    pushed_at=now,
                )
            )


async def _forget(session: AsyncSession, calendar_id: uuid.UUID, uids: list[str]) -> None:
    if uids:
        await session.execute(
            delete(PushedEvent).where(
                PushedEvent.calendar_id == calendar_id, PushedEvent.uid.in_(uids)
            )
        )
