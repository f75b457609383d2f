"""Booking: a signed-in client or a guest takes a slot the engine offers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import tokens
from slotwise.booking import events, facts, publish, repository, rules
from slotwise.booking.errors import (
    CannotBookYourself,
    GuestDetailsNotAllowed,
    GuestDetailsRequired,
    ProviderNotAccepting,
)
from slotwise.booking.events import ActorRole
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.integrity import raise_for_constraint
from slotwise.booking.models import Appointment, AppointmentEvent, Status, guest_key
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import Offering, Terms, TermsCache, checked
from slotwise.db import unsaved
from slotwise.notifications import outbox
from slotwise.providers.service import ProviderNotFound, ServiceNotFound
from slotwise.users.models import User


def client_key_for(user: User | None, data: AppointmentCreate) -> str:
    """Whose time a booking is: the account's, or the guest's. A guest's email is never
    verified, so a guest is its own client (``models.guest_key``), never the account with
    that email: nothing a guest does counts against an account."""
    if user is not None:
        return user.email.lower()
    assert data.guest_details is not None
    return guest_key(str(data.guest_details.email))


def check_caller(user: User | None, data: AppointmentCreate) -> str:
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
    """One booking in the session's transaction: checked, then written with its history and
    its messages. (``booking.group`` writes concurrent bookings together.)"""
    client_key = check_caller(user, data)

    async def attempt(terms: Terms) -> Booked:
        candidate = await prepare(session, terms, user=user, data=data, now=now)
        await rules.check_free(
            session,
            terms=terms,
            client_key=client_key,
            placement=candidate.placement,
            now=now,
            check_standing=True,
            guest_cap=guests.max_active if user is None else None,
        )
        booked = new_booking(
            candidate, user=user, data=data, client_key=client_key, now=now, guests=guests
        )
        await write(session, [booked])
        return booked

    return await checked(kept_terms, session, data.provider_id, now=now, check=attempt)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A booking that the provider's terms allow, before its time is checked for conflicts."""

    terms: Terms
    offering: Offering
    placement: rules.Placement


async def prepare(
    session: AsyncSession,
    terms: Terms,
    *,
    user: User | None,
    data: AppointmentCreate,
    now: datetime,
) -> Candidate:
    """Check a booking against the provider's terms: listed, accepting, the service, the
    duration, notice and horizon, and a slot the engine offers."""
    if not terms.listed:
        raise ProviderNotFound()
    if user is not None and terms.user_id == user.id:
        raise CannotBookYourself()
    if not terms.accepting_bookings:
        raise ProviderNotAccepting()
    offering = terms.offering(data.service_id)
    if offering is None or not offering.is_active:
        raise ServiceNotFound()
    placement = rules.place(terms, offering, data.start_datetime, data.end_datetime)
    rules.check_policy(terms, placement, now=now)
    await rules.check_offered(session, terms, offering, placement)
    return Candidate(terms=terms, offering=offering, placement=placement)


@dataclass(frozen=True, slots=True)
class Booked:
    appointment: Appointment
    manage_token: str | None  # guests only: shown once
    parties: facts.Parties
    mailing: publish.Mailing
    verify_url: str | None = None  # a held guest booking's: mailed to the guest, never shown


def new_booking(
    candidate: Candidate,
    *,
    user: User | None,
    data: AppointmentCreate,
    client_key: str,
    now: datetime,
    guests: GuestPolicy,
) -> Booked:
    """The appointment (not yet written), its first history entry and its parties. A
    guest's booking with a provider that verifies guests' emails is held until the guest
    follows the link mailed to them (``booking.guests``)."""
    terms, offering, placement = candidate.terms, candidate.offering, candidate.placement
    status = Status.PENDING if terms.requires_confirmation else Status.CONFIRMED
    guest = data.guest_details
    manage_token = tokens.new_secret_token() if guest is not None else None
    verify_token = hold_until = None
    if guest is not None and terms.verify_guest_email:
        status = Status.PENDING_VERIFICATION
        verify_token, hold_until = tokens.new_secret_token(), now + guests.hold
    # Written by Core INSERTs (create.write); the objects are only read: the answer, the
    # messages.
    appointment = unsaved(
        Appointment,
        id=uuid.uuid4(),
        provider_id=terms.provider_id,
        service_id=offering.id,
        client_id=user.id if user else None,
        guest_name=guest.name if guest else None,
        guest_email=str(guest.email).lower() if guest else None,
        guest_phone=guest.phone if guest else None,
        client_key=client_key,
        start_at=placement.start_at,
        end_at=placement.end_at,
        blocked_start_at=placement.blocked_start_at,
        blocked_end_at=placement.blocked_end_at,
        timezone=terms.timezone,
        status=status,
        notes=data.notes,
        manage_token_hash=tokens.fingerprint(manage_token) if manage_token else None,
        hold_until=hold_until,
        verify_token_hash=tokens.fingerprint(verify_token) if verify_token else None,
        cancel_reason=None,
        sequence=0,
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
        provider=facts.Party(email=terms.email, name=terms.full_name, timezone=terms.timezone),
        client=publish.client_party(appointment, user),
        title=facts.title(terms.full_name, offering.name),
    )
    return Booked(
        appointment=appointment,
        manage_token=manage_token,
        parties=parties,
        verify_url=guests.link(verify_token) if verify_token else None,
        mailing=guests.mailing,
    )


async def write(session: AsyncSession, bookings: list[Booked]) -> None:
    """Checked bookings, their history and their messages, in one statement on PostgreSQL
    (one INSERT per table elsewhere).

    On PostgreSQL an exclusion constraint may still refuse one (a race the locks did not
    order): the 409 it means is raised, and the transaction must be rolled back."""
    messages = _messages(session, bookings)
    try:
        await repository.insert_new(session, [booked.appointment for booked in bookings], messages)
    except IntegrityError as exc:
        raise_for_constraint(exc)


async def write_unless_taken(
    session: AsyncSession, bookings: list[tuple[Booked, int]]
) -> list[Booked]:
    """PostgreSQL, in an autocommit session: checked bookings, each with the rules version
    its terms were checked at, written in one statement with their history and messages,
    except those whose time proved taken, whose provider's rules changed, or whose client is
    blocked (``repository.insert_unless_taken``); the bookings written."""
    messages = _messages(session, [booked for booked, _ in bookings])
    written = await repository.insert_unless_taken(
        session, [(booked.appointment, version) for booked, version in bookings], messages
    )
    return [booked for booked, _ in bookings if booked.appointment.id in written]


def _messages(session: AsyncSession, bookings: list[Booked]) -> list[dict[str, Any]]:
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
    return messages.rows


async def rotate_manage_token(session: AsyncSession, *, appointment_id: uuid.UUID) -> str | None:
    """A new manage token for a guest booking (the old one stops working)."""
    appointment = await repository.get(session, appointment_id)
    if appointment is None or appointment.guest_email is None:
        return None
    token = tokens.new_secret_token()
    appointment.manage_token_hash = tokens.fingerprint(token)
    await session.flush()
    return token
