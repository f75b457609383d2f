"""A provider's group sessions: each with its attendees, and cancelled as one.

A session is the seats (appointments) that share a ``session_key`` (``scheduling.seats``);
only its provider (or nobody: 404) sees it. Cancelling it cancels each seat that still takes
time the way cancelling that appointment does (its row locked, its history, its messages:
each attendee hears of their own seat only).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking import lifecycle, publish, repository, waitlist
from slotwise.booking.access import Access
from slotwise.booking.errors import InvalidTransition, SessionNotFound
from slotwise.booking.events import ActorRole
from slotwise.booking.models import HOLDING_STATUSES, Status
from slotwise.errors import InvalidInput
from slotwise.providers.models import Provider
from slotwise.users.models import User

MAX_WINDOW = timedelta(days=62)


class InvalidSessionWindow(InvalidInput):
    code = "invalid_window"
    message = "Give from and to (with offsets), to after from, at most 62 days apart."


@dataclass(frozen=True, slots=True)
class Attendee:
    appointment_id: uuid.UUID
    name: str
    email: str
    status: Status


@dataclass(frozen=True, slots=True)
class GroupSession:
    session_key: uuid.UUID
    service_id: uuid.UUID | None
    title: str
    start_at: datetime
    end_at: datetime
    timezone: str
    capacity: int
    attendees: list[Attendee]

    @property
    def seats_taken(self) -> int:
        return sum(attendee.status in HOLDING_STATUSES for attendee in self.attendees)


def _sessions(provider: Provider, seats: list[repository.Seat]) -> list[GroupSession]:
    """The seats (in start order) grouped by their session."""
    found: dict[uuid.UUID, GroupSession] = {}
    for appointment, client, service_name in seats:
        party = publish.client_party(appointment, client)
        attendee = Attendee(appointment.id, party.name, party.email, appointment.status)
        session = found.get(appointment.session_key)
        if session is None:
            found[appointment.session_key] = GroupSession(
                session_key=appointment.session_key,
                service_id=appointment.service_id,
                title=service_name or provider.full_name,
                start_at=appointment.start_at,
                end_at=appointment.end_at,
                timezone=appointment.timezone,
                capacity=appointment.capacity,
                attendees=[attendee],
            )
        else:
            session.attendees.append(attendee)
    return list(found.values())


async def between(
    session: AsyncSession, *, provider: Provider, start_from: datetime, start_to: datetime
) -> list[GroupSession]:
    """The provider's sessions starting in [start_from, start_to)."""
    if start_to <= start_from or start_to - start_from > MAX_WINDOW:
        raise InvalidSessionWindow()
    seats = await repository.seats(
        session, provider_id=provider.id, start_from=start_from, start_to=start_to
    )
    return _sessions(provider, seats)


async def get(
    session: AsyncSession, *, provider: Provider, session_key: uuid.UUID, lock: bool = False
) -> GroupSession:
    """One of the provider's sessions (SessionNotFound if none of its seats is the
    provider's); ``lock``: its seats' rows are locked until the commit."""
    seats = await repository.seats(
        session, provider_id=provider.id, session_key=session_key, lock=lock
    )
    if not seats:
        raise SessionNotFound()
    return _sessions(provider, seats)[0]


async def cancel(
    session: AsyncSession,
    *,
    user: User,
    provider: Provider,
    session_key: uuid.UUID,
    reason: str | None,
    now: datetime,
) -> GroupSession:
    """Every seat of the session that takes time, cancelled as its provider cancels an
    appointment (InvalidTransition if none does). The session is off: its freed seats are
    not handed to its waitlist (they would be booked into a cancelled class), the line is
    ended instead, and seats held (a form being filled, a waiter's offer) are let go."""
    found = await get(session, provider=provider, session_key=session_key, lock=True)
    active = [a for a in found.attendees if a.status in HOLDING_STATUSES]
    if not active:  # every seat is cancelled, declined or over already
        raise InvalidTransition(details={"to": Status.CANCELLED.value})
    for attendee in active:
        if attendee.status is Status.HELD:
            continue  # not a booking: let go with the line, below
        seat = await repository.get(session, attendee.appointment_id, lock=True)
        assert seat is not None  # locked above
        appointment, owner, client, service_name = seat
        access = Access(appointment, user, ActorRole.PROVIDER, owner, client, service_name)
        await lifecycle.cancel(session, access, owner, reason=reason, hand_on=False, now=now)
    await waitlist.end_session(
        session,
        provider_id=provider.id,
        service_id=found.service_id,
        start_at=found.start_at,
        session_key=session_key,
        now=now,
    )
    return await get(session, provider=provider, session_key=session_key)
