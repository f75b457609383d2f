"""Calendar exports and the secret, subscribable feed of each user.

The appointments come from booking through ``Appointments`` (the app factory hands booking's
``publish.CalendarAppointments`` to the router), as ``BookingFacts`` (and a provider's group
sessions as ``SessionFacts``): calendars import nothing of booking but those facts.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import tokens
from slotwise.booking.facts import BookingFacts, SessionFacts
from slotwise.calendars import entries, ics
from slotwise.calendars.models import CalendarFeed
from slotwise.errors import NotFound
from slotwise.users.models import User

# A feed shows what is ahead and this much of the past.
FEED_HISTORY = timedelta(days=90)


class Appointments(Protocol):
    """What calendars ask of booking."""

    async def one(
        self, session: AsyncSession, *, user: User, appointment_id: uuid.UUID
    ) -> list[BookingFacts | SessionFacts]:
        """One appointment the user takes part in (404 for any other); an occurrence of a
        series with every occurrence of its series (one calendar event); a seat, to its
        provider, as its session."""

    async def of_user(
        self, session: AsyncSession, *, user: User, starting_from: datetime | None = None
    ) -> list[BookingFacts | SessionFacts]:
        """The user's appointments, as client and as provider, by start; each of the
        provider's group sessions as one (``SessionFacts``)."""


def _entries(bookings: list[BookingFacts | SessionFacts]) -> list[ics.CalendarEntry]:
    return [entries.entry(booking) for booking in bookings]


class FeedNotFound(NotFound):
    code = "calendar_feed_not_found"
    message = "No such calendar feed."


async def export_one(
    session: AsyncSession,
    appointments: Appointments,
    *,
    user: User,
    appointment_id: uuid.UUID,
    now: datetime,
) -> str:
    found = await appointments.one(session, user=user, appointment_id=appointment_id)
    return ics.document(_entries(found), stamp_at=now)


async def export_all(
    session: AsyncSession, appointments: Appointments, *, user: User, now: datetime
) -> str:
    found = await appointments.of_user(session, user=user)
    return ics.document(_entries(found), stamp_at=now, name="Slotwise")


async def rotate_feed(session: AsyncSession, *, user: User, now: datetime) -> str:
    """A new secret token for the user's feed (256 random bits); the old URL stops working."""
    token = tokens.new_secret_token()
    feed = await session.scalar(select(CalendarFeed).where(CalendarFeed.user_id == user.id))
    if feed is None:
        session.add(
            CalendarFeed(user_id=user.id, token_hash=tokens.fingerprint(token), created_at=now)
        )
    else:
        feed.token_hash = tokens.fingerprint(token)
        feed.created_at = now
    await session.flush()
    return token


async def revoke_feed(session: AsyncSession, *, user: User) -> None:
    await session.execute(delete(CalendarFeed).where(CalendarFeed.user_id == user.id))


async def feed(
    session: AsyncSession, appointments: Appointments, *, token: str, now: datetime
) -> str:
    owner = await session.scalar(
        select(User)
        .join(CalendarFeed, CalendarFeed.user_id == User.id)
        .where(CalendarFeed.token_hash == tokens.fingerprint(token))
    )
    if owner is None or not owner.is_active or owner.is_blocked:
        raise FeedNotFound()
    found = await appointments.of_user(session, user=owner, starting_from=now - FEED_HISTORY)
    return ics.document(_entries(found), stamp_at=now, name="Slotwise")
