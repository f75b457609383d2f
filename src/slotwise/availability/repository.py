from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.availability.models import CalendarBusy, DateOverride, TimeOff, WeeklyPattern
from slotwise.providers import repository as providers_repo
from slotwise.providers.models import Provider
from slotwise.users.models import User


async def patterns_for(
    session: AsyncSession, provider_id: uuid.UUID, *, active_only: bool
) -> list[WeeklyPattern]:
    query = select(WeeklyPattern).where(WeeklyPattern.provider_id == provider_id)
    if active_only:
        query = query.where(WeeklyPattern.is_active)
    query = query.order_by(WeeklyPattern.day_of_week, WeeklyPattern.start_time)
    return list(await session.scalars(query))


async def listed_active_patterns(
    session: AsyncSession, *, provider_id: uuid.UUID | None, limit: int, offset: int
) -> tuple[list[WeeklyPattern], int]:
    """Active patterns of the providers listed in public (or of one of them), by handle,
    day and start, with their total."""
    query = (
        select(WeeklyPattern)
        .join(Provider, WeeklyPattern.provider_id == Provider.id)
        .join(User, Provider.user_id == User.id)
        .where(WeeklyPattern.is_active, providers_repo.listed())
    )
    if provider_id is not None:
        query = query.where(WeeklyPattern.provider_id == provider_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    ordered = query.order_by(
        Provider.public_handle,
        WeeklyPattern.day_of_week,
        WeeklyPattern.start_time,
        WeeklyPattern.id,
    )
    rows = await session.scalars(ordered.limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def pattern(
    session: AsyncSession, provider_id: uuid.UUID, pattern_id: uuid.UUID
) -> WeeklyPattern | None:
    return await session.scalar(
        select(WeeklyPattern).where(
            WeeklyPattern.id == pattern_id, WeeklyPattern.provider_id == provider_id
        )
    )


def _between(
    query: Select[DateOverride], first: date | None, last: date | None
) -> Select[DateOverride]:
    if first is not None:
        query = query.where(DateOverride.on_date >= first)
    if last is not None:
        query = query.where(DateOverride.on_date <= last)
    return query


async def overrides_between(
    session: AsyncSession, provider_id: uuid.UUID, first: date | None, last: date | None
) -> list[DateOverride]:
    query = _between(
        select(DateOverride).where(DateOverride.provider_id == provider_id), first, last
    )
    return list(
        await session.scalars(query.order_by(DateOverride.on_date, DateOverride.created_at))
    )


async def override(
    session: AsyncSession, provider_id: uuid.UUID, override_id: uuid.UUID
) -> DateOverride | None:
    return await session.scalar(
        select(DateOverride).where(
            DateOverride.id == override_id, DateOverride.provider_id == provider_id
        )
    )


async def time_off_between(
    session: AsyncSession, provider_id: uuid.UUID, first: date | None, last: date | None
) -> list[TimeOff]:
    query = select(TimeOff).where(TimeOff.provider_id == provider_id)
    if first is not None:
        query = query.where(TimeOff.end_date >= first)
    if last is not None:
        query = query.where(TimeOff.start_date <= last)
    return list(await session.scalars(query.order_by(TimeOff.start_date)))


async def calendar_busy_between(
    session: AsyncSession, provider_id: uuid.UUID, start_at: datetime, end_at: datetime
) -> list[tuple[datetime, datetime]]:
    """The busy time of the provider's calendars reaching into ``[start_at, end_at)``, by
    start (each calendar's own intervals; several calendars' may overlap)."""
    rows = await session.execute(
        select(CalendarBusy.start_at, CalendarBusy.end_at)
        .where(
            CalendarBusy.provider_id == provider_id,
            CalendarBusy.start_at < end_at,
            CalendarBusy.end_at > start_at,
        )
        .order_by(CalendarBusy.start_at)
    )
    return [(row.start_at, row.end_at) for row in rows]


async def time_off(
    session: AsyncSession, provider_id: uuid.UUID, time_off_id: uuid.UUID
) -> TimeOff | None:
    return await session.scalar(
        select(TimeOff).where(TimeOff.id == time_off_id, TimeOff.provider_id == provider_id)
    )
