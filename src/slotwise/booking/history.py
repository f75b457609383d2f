"""A client's history as slot ranking reads it (`availability.ranking.HistoryReader`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking.models import Appointment, Status
from slotwise.scheduling import ranking

LOOK_BACK = timedelta(days=365)
MOST = 200  # the latest ones: enough for a habit, a bound on the read

# Past appointments that say when the client books and whether they come: those that took
# place or were missed (a confirmed one in the past was not marked either way).
_PAST = (
    select(Appointment.start_at, Appointment.timezone, Appointment.created_at, Appointment.status)
    .where(
        Appointment.client_key == bindparam("client_key"),
        Appointment.start_at >= bindparam("since"),
        Appointment.start_at < bindparam("now"),
        Appointment.status.in_((Status.COMPLETED, Status.NO_SHOW, Status.CONFIRMED)),
    )
    .order_by(Appointment.start_at.desc())
    .limit(MOST)
)


async def client_history(session: AsyncSession, client_key: str, now: datetime) -> ranking.History:
    """The client's appointments of the last year that have started (the latest 200)."""
    rows = await session.execute(
        _PAST, {"client_key": client_key, "since": now - LOOK_BACK, "now": now}
    )
    return ranking.History(
        tuple(
            ranking.Past(
                start_at=row.start_at,
                zone=ZoneInfo(row.timezone),
                booked_at=row.created_at,
                no_show=row.status is Status.NO_SHOW,
            )
            for row in rows
        )
    )
