"""Who is acting on an appointment, and in which capacity. Anyone else gets a 404."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import tokens
from slotwise.booking import repository
from slotwise.booking.errors import AppointmentNotFound
from slotwise.booking.events import ActorRole
from slotwise.booking.models import ACTIVE_STATUSES, Appointment, AppointmentSeries, Status
from slotwise.providers.models import Provider
from slotwise.users.models import Role, User


@dataclass(frozen=True, slots=True)
class Access:
    appointment: Appointment
    actor: User | None
    role: ActorRole
    provider: Provider  # whose appointment it is: its policies apply
    # What its messages tell of it besides the provider (``publish.acted_facts``): the
    # client's account (None: a guest's) and the service's name (None: no service).
    client: User | None
    service_name: str | None
    # An occurrence of a series: the series (its calendar event is the series').
    series: AppointmentSeries | None = None

    @property
    def is_client_side(self) -> bool:
        """Clients and guests are bound by the provider's policies; others are not."""
        return self.role in (ActorRole.CLIENT, ActorRole.GUEST)

    @property
    def is_staff(self) -> bool:
        """An admin, or the appointment's own provider: who moves it past the provider's
        listing, notice, horizon and limits. A member provider acting on another member's
        row of a collective team booking is not that row's staff (``booking.reschedule``)."""
        if self.role is ActorRole.ADMIN:
            return True
        return (
            self.role is ActorRole.PROVIDER
            and self.actor is not None
            and self.provider.user_id == self.actor.id
        )


async def for_user(
    session: AsyncSession, *, user: User, appointment_id: uuid.UUID, lock: bool = False
) -> Access:
    """``lock`` when the caller will change it: the row is locked until the commit."""
    return await of_found(session, await repository.get(session, appointment_id, lock=lock), user)


async def of_found(session: AsyncSession, found: repository.Found | None, user: User) -> Access:
    """``for_user`` once the appointment is read (None: there is no such appointment)."""
    if found is None or found.appointment.status is Status.HELD:  # a hold is no appointment
        raise AppointmentNotFound()
    return await with_series(session, role_of(found, user))


def role_of(found: repository.Found, user: User) -> Access:
    """The user's capacity on the appointment found: admin, its client, its provider; anyone
    else gets AppointmentNotFound."""
    if user.role is Role.ADMIN:
        return _access(found, user, ActorRole.ADMIN)
    if found.appointment.client_id == user.id:
        return _access(found, user, ActorRole.CLIENT)
    if user.role is Role.PROVIDER and found.provider.user_id == user.id:
        return _access(found, user, ActorRole.PROVIDER)
    raise AppointmentNotFound()


async def for_guest_token(session: AsyncSession, *, token: str, lock: bool = False) -> Access:
    found = await repository.get_by_token_hash(session, tokens.fingerprint(token), lock=lock)
    if found is None:
        raise AppointmentNotFound()
    return await with_series(session, _access(found, None, ActorRole.GUEST))


async def providers_moved(session: AsyncSession, access: Access) -> list[uuid.UUID]:
    """The providers whose rows move when this appointment is rescheduled: its own, and for
    a collective team booking every member's with an active row (they all move together,
    ``booking.reschedule``); none when it is not active (it does not move). Whose
    calendars are synced first, with SLOTWISE_CALENDAR_SYNC_BEFORE_BOOKING, once the
    caller may act on it."""
    team_booking_id = access.appointment.team_booking_id
    if access.appointment.status not in ACTIVE_STATUSES:
        return []
    if team_booking_id is None:
        return [access.provider.id]
    rows = await repository.team_rows(session, team_booking_id)
    moved = {access.provider.id}
    moved.update(one.provider.id for one in rows if one.appointment.status in ACTIVE_STATUSES)
    return sorted(moved)


async def with_series(session: AsyncSession, access: Access) -> Access:
    """The access, with the series of an occurrence (read only for occurrences)."""
    series_id = access.appointment.series_id
    if series_id is None:
        return access
    series = await session.get(AppointmentSeries, series_id)
    return replace(access, series=series)


def _access(found: repository.Found, actor: User | None, role: ActorRole) -> Access:
    appointment, provider, client, service_name = found
    return Access(appointment, actor, role, provider, client, service_name)
