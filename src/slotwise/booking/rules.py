"""Checks shared by booking and rescheduling: is this a time the provider offers, free?"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.availability import slots as slots_service
from slotwise.booking import repository
from slotwise.booking.errors import (
    ClientBlocked,
    ClientConflict,
    DurationMismatch,
    OutsideAvailability,
    SlotUnavailable,
    TooFar,
    TooSoon,
)
from slotwise.providers.models import Provider, Service


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an appointment sits: its time, and the provider time it blocks."""

    start_at: datetime
    end_at: datetime
    blocked_start_at: datetime
    blocked_end_at: datetime


def read_instant(value: datetime, zone: ZoneInfo) -> datetime:
    """An offset-less datetime is a wall time in the provider's zone (RFC 5545 resolution)."""
    if value.tzinfo is None:
        return scheduling.resolve_wall_time(value.date(), value.time(), zone)
    return value


def place(
    provider: Provider, service: Service | None, start: datetime, end: datetime | None
) -> Placement:
    zone = ZoneInfo(provider.timezone)
    spec = slots_service.service_spec(provider, service, None)
    start_at = read_instant(start, zone)
    end_at = start_at + spec.duration
    if end is not None and read_instant(end, zone) != end_at:
        minutes = int(spec.duration.total_seconds() // 60)
        raise DurationMismatch(details={"duration_minutes": minutes})
    return Placement(
        start_at=start_at,
        end_at=end_at,
        blocked_start_at=start_at - spec.buffer_before,
        blocked_end_at=end_at + spec.buffer_after,
    )


def check_policy(provider: Provider, placement: Placement, *, now: datetime) -> None:
    """Notice and horizon: the provider's policy, which an admin may override."""
    if placement.start_at < now + timedelta(minutes=provider.min_notice_minutes):
        raise TooSoon(details={"min_notice_minutes": provider.min_notice_minutes})
    if placement.start_at > now + timedelta(days=provider.max_advance_days):
        raise TooFar(details={"max_advance_days": provider.max_advance_days})


async def check_offered(
    session: AsyncSession, provider: Provider, service: Service | None, placement: Placement
) -> None:
    """The time must be one of the slots the engine offers for that date (busy aside)."""
    zone = ZoneInfo(provider.timezone)
    on_date = placement.start_at.astimezone(zone).date()
    rules = await slots_service.rules_for(session, provider, on_date, on_date)
    offered = scheduling.compute_slots(
        zone=zone,
        start_date=on_date,
        end_date=on_date,
        weekly=rules.weekly,
        overrides=rules.overrides,
        time_off=rules.time_off,
        service=slots_service.service_spec(provider, service, None),
        now=None,  # notice and horizon are checked apart (check_policy)
    )
    if scheduling.Slot(placement.start_at, placement.end_at) not in set(offered):
        raise OutsideAvailability()


async def check_free(
    session: AsyncSession,
    *,
    provider: Provider,
    client_key: str,
    placement: Placement,
    exclude_id: uuid.UUID | None = None,
    check_standing: bool = False,
) -> None:
    """No active appointment of the provider, nor of the client, overlaps this one; and
    (``check_standing``, for new bookings) the client is not blocked for no-shows.

    On PostgreSQL the exclusion constraints make this authoritative even under races; this
    check gives the same answer early. On SQLite the booking transaction holds the write
    lock (BEGIN IMMEDIATE), so the check itself is authoritative.
    """
    await repository.lock_booking(session, provider_id=provider.id, client_key=client_key)
    found = await repository.conflicts(
        session,
        provider_id=provider.id,
        client_key=client_key,
        start_at=placement.start_at,
        end_at=placement.end_at,
        blocked_start_at=placement.blocked_start_at,
        blocked_end_at=placement.blocked_end_at,
        exclude_id=exclude_id,
        standing=check_standing,
    )
    if found.client_blocked:
        raise ClientBlocked()
    if found.provider_busy:
        raise SlotUnavailable()
    if found.client_busy:
        raise ClientConflict()
