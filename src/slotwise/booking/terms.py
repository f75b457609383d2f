"""A provider's terms as bookings read them, kept by each worker between requests.

The terms (``scheduling.Terms``) are the provider's profile, its account's standing, its
services and the rules of its hours (the tables ``availability.sources`` declares
``in_terms``; a test holds ``read`` to them), read together as of the provider's
``rules_version``: a number that triggers raise on every change to any of them (migration
0009), whichever process or tool makes it, and that bookings do not touch. The write reads
the number back under its locks (``booking.write``), so a decision made on kept terms is
proven current in the transaction that writes the booking; kept terms that prove stale are
read again and the decision made again. A refusal decided on kept terms is confirmed on
fresh ones before it is given (``Kept.fresh``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.availability import schedules
from slotwise.providers import repository as providers_repo
from slotwise.providers import service as providers_service
from slotwise.providers.models import Provider, Service

# Overrides and time off are read for the dates a booking can take (the horizon), with a
# day's margin for zones; a date outside (an admin's reschedule) reads its own.
MARGIN = timedelta(days=1)
ATTEMPTS = 3  # decisions on terms that keep changing underneath, before giving up


@dataclass(frozen=True, slots=True)
class Known:
    """Terms as read, with who the provider is (for messages) and the provider's local
    date they were read on (kept terms are read again the next day: their dates move)."""

    terms: scheduling.Terms
    full_name: str
    email: str
    read_on: date

    @property
    def timezone(self) -> str:
        return self.terms.zone.key


def _offering(provider: Provider, service: Service | None) -> scheduling.Offering:
    spec = schedules.service_spec(provider, service, None)
    if service is None:
        return scheduling.Offering(id=None, name=None, is_active=True, spec=spec)
    return scheduling.Offering(
        id=service.id,
        name=service.name,
        is_active=service.is_active,
        spec=spec,
        team=service.team_service_id is not None,
    )


def _limits(provider: Provider) -> scheduling.Limits:
    return scheduling.Limits(
        per_day=provider.max_bookings_per_day,
        per_week=provider.max_bookings_per_week,
        per_client=provider.max_active_bookings_per_client,
    )


async def read(session: AsyncSession, ref: str, *, now: datetime) -> Known:
    """The provider's terms from the database (ProviderNotFound if unknown)."""
    # The profile, its account and its rules version in one statement, as they are now
    # (even if this session loaded the provider before). The hours are read after it: a
    # change committed meanwhile leaves the number behind, so the write finds these terms
    # stale rather than wrongly current.
    query = providers_repo.by_ref(ref).execution_options(populate_existing=True)
    provider = await session.scalar(query)
    if provider is None:
        raise providers_service.ProviderNotFound()
    zone = ZoneInfo(provider.timezone)
    today = now.astimezone(zone).date()
    first_date = today - MARGIN
    last_date = today + timedelta(days=provider.max_advance_days) + MARGIN
    rules = await schedules.rules_for(session, provider.id, first_date, last_date, zone=zone)
    services = await providers_repo.list_services(session, provider.id, active_only=False)
    terms = scheduling.Terms(
        provider_id=provider.id,
        owner_id=provider.user_id,
        version=provider.rules_version,
        zone=zone,
        listed=providers_service.is_listed(provider),
        accepting_bookings=provider.accepting_bookings,
        requires_confirmation=provider.requires_confirmation,
        verify_guest_email=provider.verify_guest_email,
        policy=schedules.policy_of(provider),
        default=_offering(provider, None),
        services={service.id: _offering(provider, service) for service in services},
        weekly=tuple(rules.weekly),
        overrides=tuple(rules.overrides),
        time_off=tuple(rules.time_off),
        first_date=first_date,
        last_date=last_date,
        limits=_limits(provider),
        busy=rules.busy,
    )
    return Known(
        terms=terms, full_name=provider.full_name, email=provider.user.email, read_on=today
    )


async def covering(
    session: AsyncSession, known: Known, request: scheduling.Request
) -> scheduling.Terms:
    """The terms, with the rules of the request's date if they do not cover it (a provider
    or an admin may move a booking past the horizon)."""
    terms = known.terms
    on_date = scheduling.requested_date(terms, request)
    if on_date is None or terms.covers(on_date):
        return terms
    rows = await schedules.rules_for(session, terms.provider_id, on_date, on_date, zone=terms.zone)
    return terms.covering(on_date, tuple(rows.overrides), tuple(rows.time_off), rows.busy)


class TermsCache:
    """Terms by the reference they were asked for (handle, provider id or user id), the
    most recently used kept; the write proves them current when a booking uses them."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._by_ref: OrderedDict[str, Known] = OrderedDict()

    async def get(
        self, session: AsyncSession, ref: str, *, now: datetime, fresh: bool = False
    ) -> tuple[Known, bool]:
        """The terms, and whether they were kept (True) or read just now (False, always
        with ``fresh``)."""
        key = ref.lower()
        kept = None if fresh else self._by_ref.get(key)
        if kept is not None and kept.read_on == now.astimezone(kept.terms.zone).date():
            self._by_ref.move_to_end(key)
            return kept, True
        return await self.fresh(session, ref, now=now), False

    async def fresh(self, session: AsyncSession, ref: str, *, now: datetime) -> Known:
        key = ref.lower()
        self._by_ref.pop(key, None)
        known = await read(session, ref, now=now)
        self._by_ref[key] = known
        while len(self._by_ref) > self.max_entries:
            self._by_ref.popitem(last=False)
        return known
