"""Calendar exports and the secret, subscribable feed of each user."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import tokens
from slotwise.booking import access as access_rules
from slotwise.calendars import entries, ics
from slotwise.calendars.models import CalendarFeed
from slotwise.errors import NotFound
from slotwise.users.models import User

# A feed shows what is ahead and this much of the past.
FEED_HISTORY = timedelta(days=90)


class FeedNotFound(NotFound):
    code = "calendar_feed_not_found"
    message = "No such calendar feed."


async def export_one(
    session: AsyncSession, *, user: User, appointment_id: uuid.UUID, now: datetime
) -> str:
    acting = await access_rules.for_user(session, user=user, appointment_id=appointment_id)
    found = await entries.entries(session, [acting.appointment])
    return ics.document(found, stamp_at=now)


async def export_all(session: AsyncSession, *, user: User, now: datetime) -> str:
    appointments = await entries.appointments_of(session, user)
    found = await entries.entries(session, appointments)
    return ics.document(found, stamp_at=now, name="Slotwise")


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


async def feed(session: AsyncSession, *, token: str, now: datetime) -> str:
    owner = await session.scalar(
        select(User)
        .join(CalendarFeed, CalendarFeed.user_id == User.id)
        .where(CalendarFeed.token_hash == tokens.fingerprint(token))
    )
    if owner is None or not owner.is_active or owner.is_blocked:
        raise FeedNotFound()
    appointments = await entries.appointments_of(session, owner, starting_from=now - FEED_HISTORY)
    found = await entries.entries(session, appointments)
    return ics.document(found, stamp_at=now, name="Slotwise")
