"""Booking: a signed-in client or a guest takes a slot the engine offers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import tokens
from slotwise.booking import repository, rules
from slotwise.booking.errors import (
    CannotBookYourself,
    GuestDetailsNotAllowed,
    GuestDetailsRequired,
    ProviderNotAccepting,
)
from slotwise.booking.events import ActorRole, record
from slotwise.booking.integrity import raise_for_constraint
from slotwise.booking.models import Appointment, Status
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import Offering, Terms, TermsCache, checked
from slotwise.calendars import entries
from slotwise.notifications import outbox
from slotwise.providers.service import ProviderNotFound, ServiceNotFound
from slotwise.users.models import User


@dataclass(frozen=True, slots=True)
class Booked:
    appointment: Appointment
    manage_token: str | None  # guests only: shown once


def client_key_for(user: User | None, data: AppointmentCreate) -> str:
    if user is not None:
        return user.email.lower()
    assert data.guest_details is not None
    return str(data.guest_details.email).lower()


async def book(
    session: AsyncSession,
    *,
    kept_terms: TermsCache,
    user: User | None,
    data: AppointmentCreate,
    now: datetime,
) -> Booked:
    if user is None and data.guest_details is None:
        raise GuestDetailsRequired()
    if user is not None and data.guest_details is not None:
        raise GuestDetailsNotAllowed()
    client_key = client_key_for(user, data)

    async def attempt(terms: Terms) -> Booked:
        return await _book(session, terms, user=user, data=data, client_key=client_key, now=now)

    return await checked(kept_terms, session, data.provider_id, now=now, check=attempt)


async def _book(
    session: AsyncSession,
    terms: Terms,
    *,
    user: User | None,
    data: AppointmentCreate,
    client_key: str,
    now: datetime,
) -> Booked:
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
    await rules.check_free(
        session, terms=terms, client_key=client_key, placement=placement, check_standing=True
    )
    return await _insert(
        session,
        terms=terms,
        offering=offering,
        user=user,
        data=data,
        client_key=client_key,
        placement=placement,
        now=now,
    )


async def _insert(
    session: AsyncSession,
    *,
    terms: Terms,
    offering: Offering,
    user: User | None,
    data: AppointmentCreate,
    client_key: str,
    placement: rules.Placement,
    now: datetime,
) -> Booked:
    status = Status.PENDING if terms.requires_confirmation else Status.CONFIRMED
    guest = data.guest_details
    manage_token = tokens.new_secret_token() if guest is not None else None
    appointment = Appointment(
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
        cancel_reason=None,
        sequence=0,
        created_at=now,
        updated_at=now,
        events=[],
    )
    record(
        appointment,
        actor=user,
        role=ActorRole.CLIENT if user else ActorRole.GUEST,
        action="created",
        now=now,
        to_status=status.value,
        to_start_at=placement.start_at,
    )
    try:
        await repository.insert_new(session, appointment)
    except IntegrityError as exc:  # a concurrent booking won the race (PostgreSQL)
        raise_for_constraint(exc)
    parties = entries.Parties(
        provider=entries.Party(email=terms.email, name=terms.full_name, timezone=terms.timezone),
        client=entries.client_party(appointment, user),
        title=entries.title(terms.full_name, offering.name),
    )
    await outbox.enqueue_booked(session, appointment=appointment, parties=parties, now=now)
    return Booked(appointment=appointment, manage_token=manage_token)


async def rotate_manage_token(session: AsyncSession, *, appointment_id: uuid.UUID) -> str | None:
    """A new manage token for a guest booking (the old one stops working)."""
    appointment = await repository.get(session, appointment_id)
    if appointment is None or appointment.guest_email is None:
        return None
    token = tokens.new_secret_token()
    appointment.manage_token_hash = tokens.fingerprint(token)
    await session.flush()
    return token
