"""Connecting, listing and disconnecting a provider's calendars.

A calendar's address and credentials are sealed with the calendar keys before they reach
the session (``keys.CalendarKeys``) and checked by the outbound guard as far as can be
without resolving (scheme, a literal private address): every sync checks them fully again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.errors import Conflict, InvalidInput, NotFound
from slotwise.external.keys import CalendarKeys
from slotwise.external.models import ExternalCalendar, Kind, Standing, SyncStatus
from slotwise.external.schemas import (
    CaldavCalendarCreate,
    CalendarCreate,
    CalendarRead,
    IcsCalendarCreate,
)
from slotwise.outbound import OutboundGuard, Refused
from slotwise.providers.models import Provider


class CalendarNotFound(NotFound):
    code = "calendar_not_found"
    message = "No such calendar."


class CalendarUrlRefused(InvalidInput):
    code = "calendar_url_refused"
    message = "Slotwise may not call this address."


class CalendarLimitReached(Conflict):
    code = "calendar_limit_reached"
    message = "You have connected as many calendars as this server allows."


class WriteCalendarTaken(Conflict):
    code = "write_calendar_taken"
    message = "Another of your calendars already receives your bookings: disconnect it first."


def ics_address(url: str) -> str:
    """``webcal://`` (what calendars hand out to subscribe) is https."""
    if url[:9].lower() == "webcal://":
        return "https://" + url[9:]
    return url


def _checked(guard: OutboundGuard, url: str, field: str) -> httpx.URL:
    try:
        return guard.check_url(url)
    except Refused as refused:
        raise CalendarUrlRefused(details={"field": field, "reason": refused.reason}) from None


def _secret(
    data: IcsCalendarCreate | CaldavCalendarCreate, guard: OutboundGuard
) -> tuple[dict[str, Any], str]:
    """What reaches the calendar (to be sealed), and its host (to be shown)."""
    if isinstance(data, IcsCalendarCreate):
        url = ics_address(data.url)
        return {"url": url}, _checked(guard, url, "url").host
    server = _checked(guard, data.server_url, "server_url")
    if data.calendar_url is not None and "://" in data.calendar_url:
        _checked(guard, data.calendar_url, "calendar_url")
    secret = {
        "server_url": data.server_url,
        "username": data.username,
        "password": data.password,
        "calendar_url": data.calendar_url,
        "calendar_name": data.calendar_name,
    }
    return secret, server.host


async def connect(
    session: AsyncSession,
    *,
    provider: Provider,
    data: CalendarCreate,
    keys: CalendarKeys,
    guard: OutboundGuard,
    max_per_provider: int,
    now: datetime,
) -> ExternalCalendar:
    """A new calendar of the provider's, due for its first sync at once."""
    secret, host = _secret(data, guard)
    sealed = keys.seal(secret)  # 503 before anything is written, with no key
    count = await session.scalar(
        select(func.count())
        .select_from(ExternalCalendar)
        .where(ExternalCalendar.provider_id == provider.id)
    )
    if (count or 0) >= max_per_provider:
        raise CalendarLimitReached(details={"max_calendars": max_per_provider})
    writes = isinstance(data, CaldavCalendarCreate) and data.write_bookings
    if writes:
        await _no_other_writer(session, provider.id)
    calendar = ExternalCalendar(
        id=uuid.uuid4(),
        provider_id=provider.id,
        kind=data.kind,
        name=data.name,
        host=host,
        secret=sealed,
        tentative_busy=data.tentative_busy,
        write_bookings=writes,
        status=Standing.ACTIVE,
        due_at=now,
        sync_status=SyncStatus.PENDING,
        event_count=0,
        created_at=now,
    )
    session.add(calendar)
    await session.flush()
    return calendar


async def _no_other_writer(session: AsyncSession, provider_id: uuid.UUID) -> None:
    taken = await session.scalar(
        select(ExternalCalendar.id).where(
            ExternalCalendar.provider_id == provider_id, ExternalCalendar.write_bookings
        )
    )
    if taken is not None:
        raise WriteCalendarTaken(details={"calendar_id": str(taken)})


async def list_for(session: AsyncSession, *, provider: Provider) -> list[ExternalCalendar]:
    rows = await session.scalars(
        select(ExternalCalendar)
        .where(ExternalCalendar.provider_id == provider.id)
        .order_by(ExternalCalendar.created_at, ExternalCalendar.id)
    )
    return list(rows)


async def get_for(
    session: AsyncSession, *, provider_id: uuid.UUID, calendar_id: uuid.UUID
) -> ExternalCalendar:
    """The provider's calendar (404 for any other's: it is not theirs to know of)."""
    calendar = await session.get(ExternalCalendar, calendar_id)
    if calendar is None or calendar.provider_id != provider_id:
        raise CalendarNotFound()
    return calendar


async def disconnect(session: AsyncSession, *, calendar: ExternalCalendar) -> None:
    """The calendar goes."""
    await session.delete(calendar)
    await session.flush()


def read(calendar: ExternalCalendar) -> CalendarRead:
    paused = calendar.status is Standing.PAUSED
    return CalendarRead(
        id=calendar.id,
        kind=Kind(calendar.kind),
        name=calendar.name,
        host=calendar.host,
        tentative_busy=calendar.tentative_busy,
        write_bookings=calendar.write_bookings,
        paused=paused,
        sync_status=SyncStatus(calendar.sync_status),
        last_attempt_at=calendar.last_attempt_at,
        last_success_at=calendar.last_success_at,
        last_error=calendar.last_error,
        failing_since=calendar.failing_since,
        event_count=calendar.event_count,
        next_sync_at=None if paused else calendar.due_at,
        last_push_at=calendar.pushed_at,
        last_push_error=calendar.push_error,
        created_at=calendar.created_at,
    )
