"""Rescheduling: the new time is checked and taken in the transaction that frees the old."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking import publish, rules
from slotwise.booking.access import Access
from slotwise.booking.errors import InvalidTransition, TooSoon
from slotwise.booking.events import record
from slotwise.booking.integrity import raise_for_constraint
from slotwise.booking.lifecycle import check_window
from slotwise.booking.models import ACTIVE_STATUSES, Appointment, Status
from slotwise.booking.schemas import RescheduleRequest
from slotwise.booking.terms import Terms, TermsCache, checked
from slotwise.notifications import outbox
from slotwise.providers.models import Provider
from slotwise.providers.service import ProviderNotFound, ServiceNotFound


async def reschedule(
    session: AsyncSession,
    access: Access,
    provider: Provider,
    *,
    kept_terms: TermsCache,
    data: RescheduleRequest,
    reminder_offsets: list[int],
    now: datetime,
) -> Appointment:
    appointment = access.appointment
    if appointment.status not in ACTIVE_STATUSES:
        raise InvalidTransition(details={"from": appointment.status.value, "to": "rescheduled"})
    check_window(access, provider, now=now)

    async def attempt(terms: Terms) -> tuple[Terms, rules.Placement]:
        if access.is_client_side and not terms.listed:
            raise ProviderNotFound()  # a new time is a booking: not with an unlisted provider
        # The appointment's own service, even if no longer offered for new bookings.
        offering = terms.offering(appointment.service_id)
        if offering is None:
            raise ServiceNotFound()
        placement = rules.place(terms, offering, data.new_start_time, data.new_end_time)
        if access.is_client_side:
            rules.check_policy(terms, placement, now=now)
        elif placement.start_at < now:
            raise TooSoon()  # providers and admins skip notice and horizon, not the past
        await rules.check_offered(session, terms, offering, placement)
        await rules.check_free(
            session,
            terms=terms,
            client_key=appointment.client_key,
            placement=placement,
            now=now,
            exclude_id=appointment.id,
        )
        return terms, placement

    terms, placement = await checked(kept_terms, session, str(provider.id), now=now, check=attempt)
    before_start, before_status = appointment.start_at, appointment.status
    before_end = appointment.end_at
    appointment.start_at = placement.start_at
    appointment.end_at = placement.end_at
    appointment.blocked_start_at = placement.blocked_start_at
    appointment.blocked_end_at = placement.blocked_end_at
    appointment.sequence += 1
    appointment.updated_at = now
    # A client's new time needs the provider's confirmation again, if the provider confirms.
    if access.is_client_side and terms.requires_confirmation:
        appointment.status = Status.PENDING
    record(
        appointment,
        actor=access.actor,
        role=access.role,
        action="rescheduled",
        now=now,
        from_status=before_status.value,
        to_status=appointment.status.value,
        from_start_at=before_start,
        to_start_at=placement.start_at,
        reason=data.reason,
    )
    try:
        await session.flush()
    except IntegrityError as exc:
        raise_for_constraint(exc)
    await outbox.enqueue_rescheduled(
        session,
        booking=await publish.facts_of(session, appointment, provider),
        offsets=reminder_offsets,
        previous_start_at=before_start,
        previous_end_at=before_end,
        before=before_status,
        now=now,
    )
    return appointment
