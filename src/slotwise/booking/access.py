"""Who is acting on an appointment, and in which capacity. Anyone else gets a 404."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import tokens
from slotwise.booking import repository
from slotwise.booking.errors import AppointmentNotFound
from slotwise.booking.events import ActorRole
from slotwise.booking.models import Appointment
from slotwise.providers import repository as providers_repo
from slotwise.providers.models import Provider
from slotwise.users.models import Role, User


@dataclass(frozen=True, slots=True)
class Access:
    appointment: Appointment
    actor: User | None
    role: ActorRole
    provider: Provider  # whose appointment it is: its policies apply

    @property
    def is_client_side(self) -> bool:
        """Clients and guests are bound by the provider's policies; others are not."""
        return self.role in (ActorRole.CLIENT, ActorRole.GUEST)


async def for_user(
    session: AsyncSession, *, user: User, appointment_id: uuid.UUID, lock: bool = False
) -> Access:
    """``lock`` when the caller will change it: the row is locked until the commit."""
    appointment = await repository.get(session, appointment_id, lock=lock)
    if appointment is None:
        raise AppointmentNotFound()
    if user.role is Role.ADMIN:
        return await _access(session, appointment, user, ActorRole.ADMIN)
    if appointment.client_id == user.id:
        return await _access(session, appointment, user, ActorRole.CLIENT)
    if user.role is Role.PROVIDER:
        provider = await providers_repo.get_for_user(session, user.id)
        if provider is not None and appointment.provider_id == provider.id:
            return Access(appointment, user, ActorRole.PROVIDER, provider)
    raise AppointmentNotFound()


async def for_guest_token(session: AsyncSession, *, token: str, lock: bool = False) -> Access:
    appointment = await repository.get_by_token_hash(session, tokens.fingerprint(token), lock=lock)
    if appointment is None:
        raise AppointmentNotFound()
    return await _access(session, appointment, None, ActorRole.GUEST)


async def _access(
    session: AsyncSession, appointment: Appointment, actor: User | None, role: ActorRole
) -> Access:
    provider = await providers_repo.get(session, appointment.provider_id)
    assert provider is not None  # appointments are deleted with their provider
    return Access(appointment, actor, role, provider)
