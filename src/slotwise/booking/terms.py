"""What bookings are checked against, kept by each worker between requests.

A provider's terms are its profile, its account's standing, its services and the rules of
its hours (the tables ``availability.sources`` declares ``in_terms``; a test holds ``read`` to
them), read together as of the provider's ``rules_version``: a number that triggers raise
on every change to any of them (migration 0009), whichever process or tool makes it, and that
bookings do not touch. The booking transaction reads the number back in the query that looks
for conflicts (``repository.conflicts``), so a check made against kept terms is proven
current in the transaction that writes the booking; kept terms that turn out stale are
read again and the checks run again (``booking.create``). A refusal based on kept terms is
confirmed against fresh ones before it is given.

The slots the engine offers on a date (busy time aside) are computed once per terms,
service and date.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.availability import slots as slots_service
from slotwise.booking.errors import (
    CannotBookYourself,
    ClientBlocked,
    ClientConflict,
    DurationMismatch,
    GuestLimitReached,
    OutsideAvailability,
    ProviderNotAccepting,
    SlotUnavailable,
    TooFar,
    TooSoon,
)
from slotwise.errors import Conflict
from slotwise.providers import repository as providers_repo
from slotwise.providers import service as providers_service
from slotwise.providers.models import Provider, Service

# Overrides and time off are read for the dates a booking can take (the horizon), with a
# day's margin for zones; a date outside (an admin's reschedule) reads its own.
MARGIN = timedelta(days=1)


class TermsChanged(Conflict):
    code = "provider_changed"
    message = "The provider's hours or terms changed while booking; try again."


class StaleTerms(Exception):
    """Kept terms are older than the provider's current rules version (a signal from the
    check to ``checked``, never an answer)."""


@dataclass(frozen=True, slots=True)
class Offering:
    """A service (or, with ``id`` None, the profile's default session) as booked."""

    id: uuid.UUID | None
    name: str | None
    is_active: bool
    spec: scheduling.ServiceSpec


@dataclass(slots=True)
class Terms:
    provider_id: uuid.UUID
    user_id: uuid.UUID
    version: int
    timezone: str
    zone: ZoneInfo
    full_name: str
    email: str
    listed: bool
    accepting_bookings: bool
    requires_confirmation: bool
    verify_guest_email: bool
    min_notice: timedelta
    max_advance: timedelta
    default: Offering
    services: dict[uuid.UUID, Offering]
    weekly: list[scheduling.WeeklyRule]
    overrides: list[scheduling.DateOverride]
    time_off: list[scheduling.TimeOff]
    first_date: date  # overrides and time off are those from first_date to last_date
    last_date: date
    read_on: date  # the provider's local date when these were read
    _offered: dict[tuple[uuid.UUID | None, date], frozenset[scheduling.Slot]] = field(
        default_factory=dict
    )

    def offering(self, service_id: uuid.UUID | None) -> Offering | None:
        return self.default if service_id is None else self.services.get(service_id)

    async def offered(
        self, session: AsyncSession, offering: Offering, on_date: date
    ) -> frozenset[scheduling.Slot]:
        """The slots the engine offers on a local date, busy time and policy aside."""
        key = (offering.id, on_date)
        found = self._offered.get(key)
        if found is not None:
            return found
        if self.first_date <= on_date <= self.last_date:
            overrides, time_off = self.overrides, self.time_off
        else:
            rows = await slots_service.rules_for(session, self.provider_id, on_date, on_date)
            overrides, time_off = rows.overrides, rows.time_off
        slots = frozenset(
            scheduling.compute_slots(
                zone=self.zone,
                start_date=on_date,
                end_date=on_date,
                weekly=self.weekly,
                overrides=overrides,
                time_off=time_off,
                service=offering.spec,
                now=None,
            )
        )
        if len(self._offered) < 1024:  # the dates a worker sees; a bound all the same
            self._offered[key] = slots
        return slots


def _offering(provider: Provider, service: Service | None) -> Offering:
    spec = slots_service.service_spec(provider, service, None)
    if service is None:
        return Offering(id=None, name=None, is_active=True, spec=spec)
    return Offering(id=service.id, name=service.name, is_active=service.is_active, spec=spec)


async def read(session: AsyncSession, ref: str, *, now: datetime) -> Terms:
    """The provider's terms from the database (ProviderNotFound if unknown or not listed)."""
    # The profile, its account and its rules version in one statement, as they are now
    # (even if this session loaded the provider before). The hours are read after it: a
    # change committed meanwhile leaves the number behind, so the booking's check finds
    # these terms stale rather than wrongly current.
    query = providers_repo.by_ref(ref).execution_options(populate_existing=True)
    provider = await session.scalar(query)
    if provider is None:
        raise providers_service.ProviderNotFound()
    zone = ZoneInfo(provider.timezone)
    today = now.astimezone(zone).date()
    first_date = today - MARGIN
    last_date = today + timedelta(days=provider.max_advance_days) + MARGIN
    rules = await slots_service.rules_for(session, provider.id, first_date, last_date)
    services = await providers_repo.list_services(session, provider.id, active_only=False)
    return Terms(
        provider_id=provider.id,
        user_id=provider.user_id,
        version=provider.rules_version,
        timezone=provider.timezone,
        zone=zone,
        full_name=provider.full_name,
        email=provider.user.email,
        listed=providers_service.is_listed(provider),
        accepting_bookings=provider.accepting_bookings,
        requires_confirmation=provider.requires_confirmation,
        verify_guest_email=provider.verify_guest_email,
        min_notice=timedelta(minutes=provider.min_notice_minutes),
        max_advance=timedelta(days=provider.max_advance_days),
        default=_offering(provider, None),
        services={service.id: _offering(provider, service) for service in services},
        weekly=rules.weekly,
        overrides=rules.overrides,
        time_off=rules.time_off,
        first_date=first_date,
        last_date=last_date,
        read_on=today,
    )


class TermsCache:
    """Terms by the reference they were asked for (handle, provider id or user id), the most
    recently used kept; each is checked against the database when a booking uses it."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._by_ref: OrderedDict[str, Terms] = OrderedDict()

    async def get(self, session: AsyncSession, ref: str, *, now: datetime) -> tuple[Terms, bool]:
        """The terms, and whether they were kept (True) or read just now (False)."""
        key = ref.lower()
        kept = self._by_ref.get(key)
        if kept is not None and kept.read_on == now.astimezone(kept.zone).date():
            self._by_ref.move_to_end(key)
            return kept, True
        return await self.fresh(session, ref, now=now), False

    async def fresh(self, session: AsyncSession, ref: str, *, now: datetime) -> Terms:
        key = ref.lower()
        self._by_ref.pop(key, None)
        terms = await read(session, ref, now=now)
        self._by_ref[key] = terms
        while len(self._by_ref) > self.max_entries:
            self._by_ref.popitem(last=False)
        return terms


# Every refusal a check against terms can give is in exactly one of these two lists
# (tests/booking/test_refusals.py reads the checks and fails on one in neither).
# Refusals that kept terms could give wrongly: given only once fresh terms agree.
REFUSALS_FROM_TERMS = (
    providers_service.ProviderNotFound,
    providers_service.ServiceNotFound,
    ProviderNotAccepting,
    CannotBookYourself,  # the provider's user, as the terms name it
    DurationMismatch,
    TooSoon,
    TooFar,
    OutsideAvailability,
)
# Refusals found by the booking's own transaction (busy time, the client's standing, a
# guest's bookings), only after it proved the terms current: given as they are.
REFUSALS_FROM_THE_TRANSACTION = (
    SlotUnavailable,
    ClientConflict,
    ClientBlocked,
    GuestLimitReached,
)
ATTEMPTS = 3
T = TypeVar("T")


async def checked(
    kept: TermsCache,
    session: AsyncSession,
    ref: str,
    *,
    now: datetime,
    check: Callable[[Terms], Awaitable[T]],
) -> T:
    """``check(terms)`` against kept terms; run again against fresh ones if they prove stale
    or refuse. Nothing may be written before the check proves the terms current."""
    terms, was_kept = await kept.get(session, ref, now=now)
    for _ in range(ATTEMPTS):
        try:
            return await check(terms)
        except StaleTerms:
            pass
        except REFUSALS_FROM_TERMS:
            if not was_kept:
                raise
        terms, was_kept = await kept.fresh(session, ref, now=now), False
    raise TermsChanged()
