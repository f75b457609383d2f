"""``slotwise rotate-calendar-keys``: every stored secret encrypted again with the first key."""

from __future__ import annotations

from sqlalchemy import select

from slotwise.config import Settings
from slotwise.db import Database
from slotwise.external.keys import CalendarKeys, UnreadableSecret
from slotwise.external.models import ExternalCalendar


async def rotate_all(settings: Settings) -> int:
    """How many calendars were encrypted again; ValueError (and nothing changed) if a secret
    opens with none of the keys, or there is no key."""
    keys = CalendarKeys([key.get_secret_value() for key in settings.calendar_keys])
    if not keys.configured:
        raise ValueError("SLOTWISE_CALENDAR_KEYS is empty")
    database = Database(settings.database_url, pool_size=1)
    try:
        async with database.transaction(writes=True) as session:
            calendars = list(await session.scalars(select(ExternalCalendar).with_for_update()))
            for calendar in calendars:
                try:
                    calendar.secret = keys.rotate(calendar.secret)
                except UnreadableSecret as exc:
                    raise ValueError(f"calendar {calendar.id}: {exc}") from exc
        return len(calendars)
    finally:
        await database.dispose()
