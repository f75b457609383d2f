"""Booking: a signed-in client or a guest takes a slot the engine offers.

One way for every booking: the decision on the provider's terms (``scheduling.decide``),
then the write (``booking.write``), which judges what only the database knows and writes.
A single booking (an idempotent one, in the transaction that claims its key) goes through
``book``; concurrent ones through ``booking.queue``, in batches, with the same steps.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.auth import tokens
from slotwise.booking import announce, events, facts, publish, repository, write
from slotwise.booking.errors import (
    GuestDetailsNotAllowed,
    GuestDetailsRequired,
    TermsChanged,
    refused,
)
from slotwise.booking.events import ActorRole
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.models import Appointment, AppointmentEvent, Status, guest_key
from slotwise.booking.schemas import AppointmentCreate, SeriesCreate
from slotwise.booking.terms import ATTEMPTS, Known, TermsCache
from slotwise.booking.write import Claim, Row
from slotwise.db import table_of, unsaved
from slotwise.notifications import outbox
from slotwise.scheduling import Proposal, Reason, Refusal
from slotwise.users.models import User
from slotwise.webhooks.events import EventType


def client_key_for(user: User | None, data: AppointmentCreate | SeriesCreate) -> str:
    """Whose time a booking is: the account's, or the guest's. A guest's email is never
    verified, so a guest is its own client (``models.guest_key``), never the account with
    that email: nothing a guest does counts against an account."""
    if user is not None:
        return user.email.lower()
    assert data.guest_details is not None
    return guest_key(str(data.guest_details.email))


def check_caller(user: User | None, data: AppointmentCreate | SeriesCreate) -> str:
    """A booking is the signed-in client's, or a guest's with their details (never both);
    the client key its overlaps are checked by."""
    if user is None and data.guest_details is None:
        raise GuestDetailsRequired()
    if user is not None and data.guest_details is not None:
        raise GuestDetailsNotAllowed()
    return client_key_for(user, data)


async def book(
    session: AsyncSession,
    *,
    kept_terms: TermsCache,
    user: User | None,
    data: AppointmentCreate,
    now: datetime,
    guests: GuestPolicy,
) -> Booked:
    """One booking in the session's transaction: decided on the provider's terms, then
    written. Kept terms that refuse it or prove stale are read again, and it is decided
    again."""
    client_key = check_caller(user, data)
    fresh = False
    for _ in range(ATTEMPTS):
        known, kept = await kept_terms.get(session, data.provider_id, now=now, fresh=fresh)
        proposal = propose(known.terms, user=user, data=data, client_key=client_key, now=now)
        if isinstance(proposal, Refusal):
            if not kept:
                raise refused(proposal)
            fresh = True  # kept terms may be stale: a refusal is given on fresh ones only
            continue
        booked = new_booking(known, proposal, user=user, data=data, now=now, guests=guests)
        (outcome,) = await write.take(session, [row_of(session, booked, proposal, guests)])
        if outcome is None:
            return booked
        if outcome.reason is not Reason.TERMS_CHANGED:
            raise refused(outcome)
        fresh = True
    raise TermsChanged()


def propose(
    terms: scheduling.Terms,
    *,
    user: User | None,
    data: AppointmentCreate,
    client_key: str,
    now: datetime,
    for_team: bool = False,
) -> Proposal | Refusal:
    """The booking decided on the provider's terms: where it sits, or why not (``for_team``:
    asked through a team, for a member's share of the team's service)."""
    request = scheduling.Request(
        service_id=data.service_id,
        start_time=data.start_datetime,
        end_time=data.end_datetime,
        by=user.id if user is not None else None,
        for_team=for_team,
    )
    decided = scheduling.decide(terms, request, now=now)
    if isinstance(decided, Refusal):
        return decided
    return Proposal(
        terms=terms,
        placement=decided,
        client_key=client_key,
        counted_per_client=user is None or terms.limits.per_client is not None,
    )


def claim_of(proposal: Proposal, *, guest: bool, now: datetime, guests: GuestPolicy) -> Claim:
    """What the write must find true for the booking: the terms still current, the time
    free, and room under every limit that applies (the provider's, and a guest's cap)."""
    client_cap, guest_cap = proposal.terms.limits.per_client, False
    if guest and (client_cap is None or guests.max_active < client_cap):
        client_cap, guest_cap = guests.max_active, True
    return write.claim_for(
        proposal.terms,
        proposal.placement,
        client_key=proposal.client_key,
        now=now,
        client_cap=client_cap,
        guest_cap=guest_cap,
    )


def row_of(
    session: AsyncSession,
    booked: Booked,
    proposal: Proposal,
    guests: GuestPolicy,
    *,
    mailed: bool = True,
) -> Row:
    """The booking as the write takes it: its claim, its rows, its messages (none when not
    ``mailed``: a series occurrence, whose series is mailed as one)."""
    appointment = booked.appointment
    guest = appointment.client_id is None
    return Row(
        claim=claim_of(proposal, guest=guest, now=appointment.created_at, guests=guests),
        appointment=_values(appointment, _APPOINTMENTS),
        events=[_values(event, _EVENTS) for event in appointment.events],
        messages=_messages([booked]) if mailed else [],
        announced=announce.event(
            EventType.BOOKING_CREATED, appointment, now=appointment.created_at
        ),
    )


_APPOINTMENTS = table_of(Appointment)
_EVENTS = table_of(AppointmentEvent)


def _values(instance: object, table: Table) -> dict[str, Any]:
    """The row of an ``unsaved`` instance, from its ``__dict__`` (the attributes'
    descriptors cost more than the dictionary)."""
    given = vars(instance)
    return {column.key: given[column.key] for column in table.columns}


@dataclass(frozen=True, slots=True)
class Booked:
    appointment: Appointment
    manage_token: str | None  # guests only: shown once
    parties: facts.Parties
    mailing: publish.Mailing
    verify_url: str | None = None  # a held guest booking's: mailed to the guest, never shown


@dataclass(frozen=True, slots=True)
class NewHold:
    """A held row not yet written: the instance, its token (shown once), and its row for
    ``write.take`` (no history, no messages of its own)."""

    hold: Appointment
    token: str
    row: Row


def new_hold(
    known: Known,
    placement: scheduling.Placement,
    *,
    user: User | None,
    own_key: str,
    holder: str,
    hold_cap: int,
    hold_until: datetime,
    now: datetime,
) -> NewHold:
    """A hold of ``placement``: a signed-in holder's under their own client key ``own_key``
    (their overlap rule applies at once); an anonymous one under a key of its own, which
    nobody else has. Judged as a booking is, plus the holder's live holds (``hold_cap``)."""
    terms = known.terms
    hold_id = uuid.uuid4()
    token = tokens.new_secret_token()
    client_key = own_key if user is not None else f"hold:{hold_id}"
    claim = write.claim_for(
        terms,
        placement,
        client_key=client_key,
        now=now,
        client_cap=terms.limits.per_client if user is not None else None,
        check_standing=user is not None,
    )
    hold = unsaved(
        Appointment,
        id=hold_id,
        session_key=placement.session_key or hold_id,
        seat_no=1,
        capacity=placement.offering.capacity,
        provider_id=terms.provider_id,
        service_id=placement.offering.id,
        client_id=user.id if user is not None else None,
        guest_name=None,
        guest_email=None if user is not None else "",  # has_client: no one's address
        guest_phone=None,
        client_key=client_key,
        start_at=placement.start_at,
        end_at=placement.end_at,
        blocked_start_at=placement.blocked_start_at,
        blocked_end_at=placement.blocked_end_at,
        timezone=known.timezone,
        status=Status.HELD,
        notes=None,
        cancel_reason=None,
        manage_token_hash=None,
        hold_until=hold_until,
        verify_token_hash=None,
        hold_token_hash=tokens.fingerprint(token),
        held_by=holder,
        series_id=None,
        recurrence_at=None,
        team_booking_id=None,
        sequence=0,
        created_at=now,
        updated_at=now,
    )
    row = Row(
        claim=replace(claim, holder=holder, hold_cap=hold_cap),
        appointment=_values(hold, _APPOINTMENTS),
        events=[],
        messages=[],
    )
    return NewHold(hold=hold, token=token, row=row)


def new_booking(
    known: Known,
    proposal: Proposal,
    *,
    user: User | None,
    data: AppointmentCreate,
    now: datetime,
    guests: GuestPolicy,
    appointment_id: uuid.UUID | None = None,
    team_booking_id: uuid.UUID | None = None,
) -> Booked:
    """The appointment (not yet written), its first history entry and its parties. A
    guest's booking with a provider that verifies guests' emails is held until the guest
    follows the link mailed to them (``booking.guests``). ``appointment_id``: the row it
    will be (a hold's, which becomes the booking: ``booking.holds``); else a new one.
    ``team_booking_id``: the collective team booking it is one member's row of."""
    terms, placement = proposal.terms, proposal.placement
    offering = placement.offering
    status = Status.PENDING if terms.requires_confirmation else Status.CONFIRMED
    guest = data.guest_details
    manage_token = tokens.new_secret_token() if guest is not None else None
    verify_token = hold_until = None
    if guest is not None and terms.verify_guest_email:
        status = Status.PENDING_VERIFICATION
        verify_token, hold_until = tokens.new_secret_token(), now + guests.hold
    # Written by Core INSERTs (``booking.write``); the objects are only read: the answer,
    # the messages. A seat's number is picked by the write, among those its session has free.
    appointment_id = appointment_id or uuid.uuid4()
    appointment = unsaved(
        Appointment,
        id=appointment_id,
        session_key=placement.session_key or appointment_id,
        seat_no=1,
        capacity=offering.capacity,
        provider_id=terms.provider_id,
        service_id=offering.id,
        client_id=user.id if user else None,
        guest_name=guest.name if guest else None,
        guest_email=str(guest.email).lower() if guest else None,
        guest_phone=guest.phone if guest else None,
        client_key=proposal.client_key,
        start_at=placement.start_at,
        end_at=placement.end_at,
        blocked_start_at=placement.blocked_start_at,
        blocked_end_at=placement.blocked_end_at,
        timezone=known.timezone,
        status=status,
        notes=data.notes,
        manage_token_hash=tokens.fingerprint(manage_token) if manage_token else None,
        hold_until=hold_until,
        verify_token_hash=tokens.fingerprint(verify_token) if verify_token else None,
        hold_token_hash=None,
        held_by=None,
        cancel_reason=None,
        sequence=0,
        series_id=None,
        recurrence_at=None,
        team_booking_id=team_booking_id,
        created_at=now,
        updated_at=now,
        events=[],
    )
    created = events.entry(
        appointment,
        actor=user,
        role=ActorRole.CLIENT if user else ActorRole.GUEST,
        action="created",
        now=now,
        to_status=status.value,
        to_start_at=placement.start_at,
    )
    appointment.events.append(unsaved(AppointmentEvent, **created))
    parties = facts.Parties(
        provider=facts.Party(email=known.email, name=known.full_name, timezone=known.timezone),
        client=publish.client_party(appointment, user),
        title=facts.title(known.full_name, offering.name),
    )
    return Booked(
        appointment=appointment,
        manage_token=manage_token,
        parties=parties,
        verify_url=guests.link(verify_token) if verify_token else None,
        mailing=guests.mailing,
    )


def _messages(bookings: list[Booked]) -> list[dict[str, Any]]:
    return messages_of(bookings).rows


def messages_of(bookings: list[Booked]) -> outbox.Batch:
    """The outbox rows announcing the bookings: confirmations or requests (a guest's with
    its manage link, where the application mails one), and reminders; for a held guest
    booking, only the guest's verification link."""
    messages = outbox.Batch()
    for booked in bookings:
        link = outbox.manage_url(booked.mailing.guest_manage_url, booked.manage_token)
        booking = publish.facts(booked.appointment, booked.parties, manage_url=link)
        if booked.verify_url is not None:  # held: the guest's link, and nothing else yet
            outbox.add_held(
                messages,
                booking=booking,
                now=booked.appointment.created_at,
                verify_url=booked.verify_url,
            )
            continue
        outbox.add_booked(
            messages,
            booked.mailing.reminder_offsets_minutes,
            booking=booking,
            now=booked.appointment.created_at,
        )
    return messages


async def rotate_manage_token(session: AsyncSession, *, appointment_id: uuid.UUID) -> str | None:
    """A new manage token for a guest booking (the old one stops working)."""
    found = await repository.get(session, appointment_id)
    if found is None or found.appointment.guest_email is None:
        return None
    appointment = found.appointment
    token = tokens.new_secret_token()
    appointment.manage_token_hash = tokens.fingerprint(token)
    await session.flush()
    return token
