"""Appointments as calendar entries, with the names and addresses of both parties."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking.models import Appointment
from slotwise.calendars.ics import CalendarEntry
from slotwise.providers.models import Provider, Service
from slotwise.users.models import User


@dataclass(frozen=True, slots=True)
class Party:
    """Someone a message about an appointment goes to, and their time zone."""

    email: str
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class Parties:
    provider: Party
    client: Party
    title: str


async def parties_of(
    session: AsyncSession, appointment: Appointment, provider: Provider | None = None
) -> Parties:
    if provider is None or provider.id != appointment.provider_id:
        provider = await session.get(Provider, appointment.provider_id)
        assert provider is not None  # appointments cascade with their provider
    client_user = await session.get(User, appointment.client_id) if appointment.client_id else None
    service = await session.get(Service, appointment.service_id) if appointment.service_id else None
    return Parties(
        provider=Party(
            email=provider.user.email, name=provider.full_name, timezone=provider.timezone
        ),
        client=client_party(appointment, client_user),
        title=title(provider.full_name, service.name if service else None),
    )


def client_party(appointment: Appointment, client_user: User | None) -> Party:
    """The client: their account, or the guest's details (by the booking's zone)."""
    if client_user is not None:
        return Party(
            email=client_user.email,
            name=client_user.full_name,
            timezone=client_user.timezone or appointment.timezone,
        )
    return Party(
        email=appointment.guest_email or appointment.client_key,
        name=appointment.guest_name or appointment.client_key,
        timezone=appointment.timezone,
    )


def title(provider_name: str, service_name: str | None) -> str:
    if service_name:
        return f"{service_name} with {provider_name}"
    return f"Appointment with {provider_name}"


def entry(appointment: Appointment, parties: Parties) -> CalendarEntry:
    return CalendarEntry(
        appointment_id=appointment.id,
        sequence=appointment.sequence,
        status=appointment.status.value,
        start_at=appointment.start_at,
        end_at=appointment.end_at,
        title=parties.title,
        provider_name=parties.provider.name,
        provider_email=parties.provider.email,
        client_name=parties.client.name,
        client_email=parties.client.email,
        notes=appointment.notes,
    )


async def entries(session: AsyncSession, appointments: list[Appointment]) -> list[CalendarEntry]:
    """Calendar entries of appointments (the session's identity map caches the parties)."""
    return [entry(a, await parties_of(session, a)) for a in appointments]


async def appointments_of(
    session: AsyncSession, user: User, *, starting_from: datetime | None = None
) -> list[Appointment]:
    """The user's appointments as client and as provider, by start."""
    provider_ids = select(Provider.id).where(Provider.user_id == user.id)
    query = select(Appointment).where(
        or_(Appointment.client_id == user.id, Appointment.provider_id.in_(provider_ids))
    )
    if starting_from is not None:
        query = query.where(Appointment.start_at >= starting_from)
    rows = await session.scalars(query.order_by(Appointment.start_at, Appointment.id))
    return list(rows)
