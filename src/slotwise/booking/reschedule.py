"""Rescheduling: the new time is decided, judged and taken in the transaction that frees
the old, by the same decision and the same judgment as a new booking."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.booking import change, publish, waitlist, write
from slotwise.booking.access import Access
from slotwise.booking.errors import (
    CollectiveNotMovable,
    InvalidTransition,
    TermsChanged,
    refused,
)
from slotwise.booking.integrity import raise_for_constraint
from slotwise.booking.lifecycle import check_window
from slotwise.booking.models import ACTIVE_STATUSES, Appointment, Status
from slotwise.booking.schemas import RescheduleRequest
from slotwise.booking.terms import ATTEMPTS, TermsCache, covering
from slotwise.notifications import outbox
from slotwise.providers.models import Provider
from slotwise.scheduling import Interval, Kind, Placement, Reason, Refusal


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
    if appointment.team_booking_id is not None:  # its members' rows move together, or none
        raise CollectiveNotMovable()
    # The appointment's own service, even if no longer offered for new bookings; a client's
    # new time is held to the listing, notice and horizon like a booking.
    request = scheduling.Request(
        service_id=appointment.service_id,
        start_time=data.new_start_time,
        end_time=data.new_end_time,
        kind=Kind.CLIENT_MOVE if access.is_client_side else Kind.STAFF_MOVE,
    )
    terms, placement, seat_no = await _decided(
        session, kept_terms, str(provider.id), request, appointment, now
    )
    before_start, before_status = appointment.start_at, appointment.status
    before_end = appointment.end_at
    before_blocked = Interval(appointment.blocked_start_at, appointment.blocked_end_at)
    before_session = appointment.session_key
    status = appointment.status
    # A client's new time needs the provider's confirmation again, if the provider confirms.
    if access.is_client_side and terms.requires_confirmation:
        status = Status.PENDING
    moved = change.apply(
        appointment,
        {
            "start_at": placement.start_at,
            "end_at": placement.end_at,
            "blocked_start_at": placement.blocked_start_at,
            "blocked_end_at": placement.blocked_end_at,
            # A seat moves to the session at its new time (a one-to-one row stays its own).
            "session_key": placement.session_key or appointment.id,
            "seat_no": seat_no,
            "capacity": placement.offering.capacity,
            "sequence": appointment.sequence + 1,
            "status": status,
        },
        actor=access.actor,
        role=access.role,
        action="rescheduled",
        now=now,
        from_status=before_status.value,
        to_status=status.value,
        from_start_at=before_start,
        to_start_at=placement.start_at,
        reason=data.reason,
    )
    messages = outbox.Batch()
    outbox.add_rescheduled(
        messages,
        booking=publish.acted_facts(access),
        offsets=reminder_offsets,
        previous_start_at=before_start,
        previous_end_at=before_end,
        before=before_status,
        now=now,
    )
    try:
        await change.write(session, moved, messages)
    except IntegrityError as exc:
        raise_for_constraint(exc)
    # The old time (or seat), freed, goes to the first in its waitlist (booking.waitlist).
    if (
        before_blocked != Interval(appointment.blocked_start_at, appointment.blocked_end_at)
        or before_session != appointment.session_key
    ):
        await waitlist.promote(
            session, provider_id=appointment.provider_id, freed=before_blocked, now=now
        )
    return appointment


async def _decided(
    session: AsyncSession,
    kept_terms: TermsCache,
    ref: str,
    request: scheduling.Request,
    appointment: Appointment,
    now: datetime,
) -> tuple[scheduling.Terms, Placement, int]:
    """The new time decided on the provider's terms and judged free under the locks (its
    own current time aside), with the seat number it takes there (1 when not a seat);
    refusals on kept terms confirmed on fresh ones."""
    fresh = False
    for _ in range(ATTEMPTS):
        known, kept = await kept_terms.get(session, ref, now=now, fresh=fresh)
        terms = await covering(session, known, request)
        decided = scheduling.decide(terms, request, now=now)
        if isinstance(decided, Refusal):
            if not kept:
                raise refused(decided)
            fresh = True
            continue
        # A client's new time counts toward the provider's day and week limits like a
        # booking (its own old time aside); the provider and admins move bookings past them.
        claim = write.claim_for(
            terms,
            decided,
            client_key=appointment.client_key,
            now=now,
            count_day_and_week=request.kind is not Kind.STAFF_MOVE,
            check_standing=False,
            exclude_id=appointment.id,
        )
        outcome = await write.check_move(session, claim)
        if isinstance(outcome, int):
            return terms, decided, outcome
        if outcome.reason is not Reason.TERMS_CHANGED:
            raise refused(outcome)
        fresh = True
    raise TermsChanged()
