"""Use cases on a provider's hours: weekly patterns, date overrides, time off."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.availability import repository
from slotwise.availability.models import DateOverride, TimeOff, WeeklyPattern
from slotwise.availability.schemas import (
    OverrideCreate,
    OverrideRead,
    PatternCreate,
    PatternUpdate,
    TimeOffCreate,
    TimeRangeBody,
    check_dates,
    check_range,
)
from slotwise.errors import Conflict, InvalidInput, NotFound
from slotwise.providers.models import Provider
from slotwise.scheduling import end_since_midnight, since_midnight
from slotwise.webhooks import queue
from slotwise.webhooks.events import EventType


class PatternNotFound(NotFound):
    code = "availability_not_found"
    message = "No such availability pattern."


class OverrideNotFound(NotFound):
    code = "date_override_not_found"
    message = "No such date override."


class TimeOffNotFound(NotFound):
    code = "time_off_not_found"
    message = "No such time off."


class PatternOverlap(Conflict):
    code = "availability_overlap"
    message = "This range overlaps another active range on the same day."


class InvalidTimeRange(InvalidInput):
    code = "invalid_time_range"
    message = "end_time must be after start_time, and the last date not before the first."


def _validity_overlaps(a: WeeklyPattern, b: WeeklyPattern) -> bool:
    a_first, a_last = a.valid_from_date or date.min, a.valid_until_date or date.max
    b_first, b_last = b.valid_from_date or date.min, b.valid_until_date or date.max
    return a_first <= b_last and b_first <= a_last


async def _check_no_overlap(session: AsyncSession, pattern: WeeklyPattern) -> None:
    if not pattern.is_active:
        return
    for other in await repository.patterns_for(session, pattern.provider_id, active_only=True):
        if (
            other.id != pattern.id
            and other.day_of_week == pattern.day_of_week
            and since_midnight(other.start_time) < end_since_midnight(pattern.end_time)
            and since_midnight(pattern.start_time) < end_since_midnight(other.end_time)
            and _validity_overlaps(other, pattern)
        ):
            raise PatternOverlap(details={"conflicting_id": str(other.id)})


async def list_patterns(
    session: AsyncSession, *, provider: Provider, include_inactive: bool
) -> list[WeeklyPattern]:
    return await repository.patterns_for(session, provider.id, active_only=not include_inactive)


async def list_public_patterns(
    session: AsyncSession, *, provider: Provider | None, limit: int, offset: int
) -> tuple[list[WeeklyPattern], int]:
    """Active weekly patterns of every provider listed in public, or of ``provider``."""
    return await repository.listed_active_patterns(
        session, provider_id=provider.id if provider else None, limit=limit, offset=offset
    )


async def _announce(session: AsyncSession, provider: Provider, *, what: str, now: datetime) -> None:
    """``availability.changed`` for webhook subscribers: whose schedule, and which part of
    it (``hours``, ``overrides`` or ``time_off``); they read the new slots themselves."""
    data = {"provider_id": str(provider.id), "changed": what}
    await queue.enqueue(
        session,
        [queue.event(EventType.AVAILABILITY_CHANGED, provider_id=provider.id, data=data, now=now)],
    )


async def add_pattern(
    session: AsyncSession, *, provider: Provider, data: PatternCreate, now: datetime
) -> WeeklyPattern:
    pattern = WeeklyPattern(
        id=uuid.uuid4(),
        provider_id=provider.id,
        created_at=now,
        updated_at=now,
        **data.model_dump(),
    )
    await _check_no_overlap(session, pattern)
    session.add(pattern)
    await session.flush()
    await _announce(session, provider, what="hours", now=now)
    return pattern


async def update_pattern(
    session: AsyncSession,
    *,
    provider: Provider,
    pattern_id: uuid.UUID,
    data: PatternUpdate,
    now: datetime,
) -> WeeklyPattern:
    pattern = await repository.pattern(session, provider.id, pattern_id)
    if pattern is None:
        raise PatternNotFound()
    changes = data.model_dump(exclude_unset=True)
    required = {"day_of_week", "start_time", "end_time", "is_active"}
    new = {k: v for k, v in changes.items() if v is not None or k not in required}
    start: time = new.get("start_time", pattern.start_time)
    end: time = new.get("end_time", pattern.end_time)
    try:
        check_range(start, end)
        check_dates(
            new.get("valid_from_date", pattern.valid_from_date),
            new.get("valid_until_date", pattern.valid_until_date),
            "valid_from/until_date",
        )
    except ValueError as exc:
        raise InvalidTimeRange(str(exc)) from exc
    for field, value in new.items():
        setattr(pattern, field, value)
    pattern.updated_at = now
    await _check_no_overlap(session, pattern)
    await session.flush()
    await _announce(session, provider, what="hours", now=now)
    return pattern


async def delete_pattern(
    session: AsyncSession, *, provider: Provider, pattern_id: uuid.UUID, now: datetime
) -> None:
    pattern = await repository.pattern(session, provider.id, pattern_id)
    if pattern is None:
        raise PatternNotFound()
    await session.delete(pattern)
    await session.flush()
    await _announce(session, provider, what="hours", now=now)


def override_read(row: DateOverride, *, with_note: bool = True) -> OverrideRead:
    """An override as shown; its note is private to the provider and admins."""
    return OverrideRead(
        id=row.id,
        provider_id=row.provider_id,
        date=row.on_date,
        kind=row.kind,
        ranges=[
            TimeRangeBody(start_time=time.fromisoformat(a), end_time=time.fromisoformat(b))
            for a, b in row.ranges
        ],
        note=row.note if with_note else None,
    )


async def list_overrides(
    session: AsyncSession, *, provider: Provider, first: date | None, last: date | None
) -> list[DateOverride]:
    return await repository.overrides_between(session, provider.id, first, last)


async def add_override(
    session: AsyncSession, *, provider: Provider, data: OverrideCreate, now: datetime
) -> DateOverride:
    row = DateOverride(
        provider_id=provider.id,
        on_date=data.date,
        kind=data.kind,
        ranges=[[r.start_time.isoformat(), r.end_time.isoformat()] for r in data.ranges],
        note=data.note,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    await _announce(session, provider, what="overrides", now=now)
    return row


async def delete_override(
    session: AsyncSession, *, provider: Provider, override_id: uuid.UUID, now: datetime
) -> None:
    row = await repository.override(session, provider.id, override_id)
    if row is None:
        raise OverrideNotFound()
    await session.delete(row)
    await session.flush()
    await _announce(session, provider, what="overrides", now=now)


async def list_time_off(
    session: AsyncSession, *, provider: Provider, first: date | None, last: date | None
) -> list[TimeOff]:
    return await repository.time_off_between(session, provider.id, first, last)


async def add_time_off(
    session: AsyncSession, *, provider: Provider, data: TimeOffCreate, now: datetime
) -> TimeOff:
    row = TimeOff(provider_id=provider.id, created_at=now, updated_at=now, **data.model_dump())
    session.add(row)
    await session.flush()
    await _announce(session, provider, what="time_off", now=now)
    return row


async def delete_time_off(
    session: AsyncSession, *, provider: Provider, time_off_id: uuid.UUID, now: datetime
) -> None:
    row = await repository.time_off(session, provider.id, time_off_id)
    if row is None:
        raise TimeOffNotFound()
    await session.delete(row)
    await session.flush()
    await _announce(session, provider, what="time_off", now=now)
