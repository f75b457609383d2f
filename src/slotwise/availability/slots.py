"""The slot use case: load a provider's rules and busy time, ask the pure engine."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.availability import repository
from slotwise.availability.models import DateOverride, TimeOff, WeeklyPattern
from slotwise.booking import repository as booking_repo
from slotwise.errors import InvalidInput
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
    session: AsyncSession, *, provider_id: uuid.UUID, start_at: datetime, end_at: datetime
) -> list[scheduling.Interval]:
    """Provider time already taken: active appointments widened by their buffers."""
    rows = await booking_repo.busy_between(session, provider_id, start_at, end_at)
    return [scheduling.Interval(start, end) for start, end in rows]


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """A provider's hours for some dates, as the engine takes them."""

    weekly: list[scheduling.WeeklyRule]
    overrides: list[scheduling.DateOverride]
    time_off: list[scheduling.TimeOff]


async def rules_for(
    session: AsyncSession, provider: Provider, start_date: date, end_date: date
) -> ProviderRules:
    patterns = await repository.patterns_for(session, provider.id, active_only=True)
    overrides = await repository.overrides_between(session, provider.id, start_date, end_date)
    time_off = await repository.time_off_between(session, provider.id, start_date, end_date)
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
) -> list[scheduling.Slot]:
    if not provider.accepting_bookings:
        return []
    zone = ZoneInfo(provider.timezone)
    rules = await rules_for(session, provider, start_date, end_date)
    # The busy time that matters: the local days asked for, widened by the largest buffer
    # (4 hours) and a DST shift at midnight.
    margin = timedelta(hours=6)
    window_start = datetime.combine(start_date, time(), zone) - margin
    window_end = datetime.combine(end_date + timedelta(days=1), time(), zone) + margin
    busy = await busy_intervals(
        session, provider_id=provider.id, start_at=window_start, end_at=window_end
    )
    return scheduling.compute_slots(
        zone=zone,
        start_date=start_date,
        end_date=end_date,
        weekly=rules.weekly,
        overrides=rules.overrides,
        time_off=rules.time_off,
        busy=busy,
        service=service_spec(provider, service, duration_minutes),
        policy=policy_of(provider),
        now=now,
    )
