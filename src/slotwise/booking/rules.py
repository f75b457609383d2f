"""Checks shared by booking and rescheduling: is this a time the provider offers, free?"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.booking import repository
from slotwise.booking.errors import (
    ClientBlocked,
    ClientConflict,
    DurationMismatch,
    GuestLimitReached,
    OutsideAvailability,
    SlotUnavailable,
    TooFar,
    TooSoon,
)
from slotwise.booking.terms import Offering, StaleTerms, Terms


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


def place(terms: Terms, offering: Offering, start: datetime, end: datetime | None) -> Placement:
    start_at = read_instant(start, terms.zone)
    end_at = start_at + offering.spec.duration
    if end is not None and read_instant(end, terms.zone) != end_at:
        minutes = int(offering.spec.duration.total_seconds() // 60)
        raise DurationMismatch(details={"duration_minutes": minutes})
    return Placement(
        start_at=start_at,
        end_at=end_at,
        blocked_start_at=start_at - offering.spec.buffer_before,
        blocked_end_at=end_at + offering.spec.buffer_after,
    )


def check_policy(terms: Terms, placement: Placement, *, now: datetime) -> None:
    """Notice and horizon: the provider's policy, which an admin may override."""
    if placement.start_at < now + terms.min_notice:
        raise TooSoon(details={"min_notice_minutes": terms.min_notice // timedelta(minutes=1)})
    if placement.start_at > now + terms.max_advance:
        raise TooFar(details={"max_advance_days": terms.max_advance.days})


async def check_offered(
    session: AsyncSession, terms: Terms, offering: Offering, placement: Placement
) -> None:
    """The time must be one of the slots the engine offers for that date (busy aside)."""
    on_date = placement.start_at.astimezone(terms.zone).date()
    offered = await terms.offered(session, offering, on_date)
    if scheduling.Slot(placement.start_at, placement.end_at) not in offered:
        raise OutsideAvailability()


async def check_free(
    session: AsyncSession,
    *,
    terms: Terms,
    client_key: str,
    placement: Placement,
    now: datetime,
    exclude_id: uuid.UUID | None = None,
    check_standing: bool = False,
    guest_cap: int | None = None,
) -> None:
    """No active appointment (or held guest booking) of the provider, nor of the client,
    overlaps this one; (``check_standing``, for new bookings) the client is not blocked for
    no-shows; and (``guest_cap``, a guest's new booking) the guest holds fewer upcoming
    bookings with the provider. The same query proves ``terms`` current (StaleTerms if the
    provider's rules changed since). Expired holds of the provider and the client are
    released first.

    Under the provider's and the client's locks (PostgreSQL; SQLite's write lock, BEGIN
    IMMEDIATE, already serializes writers), taken before the query reads, so it reads
    every booking committed before: the check is authoritative, and on PostgreSQL the
    exclusion constraints hold the overlaps even so.
    """
    await repository.lock_bookings(session, [(terms.provider_id, client_key)])
    await repository.release_expired(session, [(terms.provider_id, client_key)], now=now)
    found = await repository.conflicts(
        session,
        provider_id=terms.provider_id,
        client_key=client_key,
        start_at=placement.start_at,
        end_at=placement.end_at,
        blocked_start_at=placement.blocked_start_at,
        blocked_end_at=placement.blocked_end_at,
        exclude_id=exclude_id,
        standing=check_standing,
        since=now if guest_cap is not None else None,
    )
    refuse_conflicts(terms, found, guest_cap=guest_cap)


def refuse_conflicts(
    terms: Terms, found: repository.Conflicts, *, guest_cap: int | None = None
) -> None:
    """What the conflicts query found, as the refusal to answer (StaleTerms first: every
    other finding is judged against current terms). ``guest_cap``: a guest's booking, and
    how many upcoming bookings with the provider a guest may hold."""
    if found.rules_version != terms.version:
        raise StaleTerms()
    if found.client_blocked:
        raise ClientBlocked()
    if found.provider_busy:
        raise SlotUnavailable()
    if found.client_busy:
        raise ClientConflict()
    if guest_cap is not None and found.guest_bookings >= guest_cap:
        raise GuestLimitReached(details={"max_active_bookings": guest_cap})
