"""The provider's busy time, as slot listings read it (`availability.busy.BusyReader`).

Booking owns what takes a provider's time (the active statuses, guests' holds, buffers);
availability declares the read it needs and receives this function from `main.py`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BindParameter, Select, and_, bindparam, func, or_, select
from sqlalchemy.engine import Connection

from slotwise.availability.busy import Busy
from slotwise.booking.models import Appointment
from slotwise.booking.repository import _HELD, LONGEST_BLOCK, blocking, takes_time
from slotwise.providers.models import Provider

_PROVIDER_ID: BindParameter[uuid.UUID] = bindparam("provider_id")


# The provider's row, joined to its blocked spans in the window (none: one row of nulls):
# the rules version comes in the same statement as the busy time, so hours a listing kept
# are proven current by the very read that gives it the bookings. Built once: executed
# with its parameters, it is compiled once per process.
def _busy(*, ranges: bool) -> Select[int, datetime, datetime, datetime | None]:
    return (
        select(
            Provider.rules_version,
            Appointment.blocked_start_at,
            Appointment.blocked_end_at,
            Appointment.hold_until,
        )
        .select_from(Provider)
        .outerjoin(
            Appointment,
            and_(
                *blocking(
                    _PROVIDER_ID,
                    bindparam("start_at"),
                    bindparam("end_at"),
                    bindparam("earliest"),
                    ranges=ranges,
                ),
                or_(Appointment.status != _HELD, Appointment.hold_until > bindparam("now")),
            ),
        )
        .where(Provider.id == _PROVIDER_ID)
        .order_by(Appointment.blocked_start_at)
    )


# By dialect: on PostgreSQL the overlap also as the exclusion constraint's range, for its
# index (``repository.blocking``).
_BUSY = {False: _busy(ranges=False), True: _busy(ranges=True)}


def busy_between(
    connection: Connection,
    provider_id: uuid.UUID,
    start_at: datetime,
    end_at: datetime,
    *,
    now: datetime,
    counted: tuple[datetime, datetime] | None = None,
    sessions_of: uuid.UUID | None = None,
) -> Busy:
    """Blocked spans of the provider's active appointments, and of the guest bookings held
    at ``now``, that touch [start_at, end_at); with the provider's rules version; and
    (``counted``) when its bookings that take time start within that window, as the
    booking write's limits count them (a group session once); and (``sessions_of``) the
    sessions of that group service that touch the window, with their seats. Synchronous:
    run in SQLAlchemy's greenlet (see `availability.busy.BusyReader`)."""
    # Plain rows from a connection: a month can hold thousands, and the ORM's row
    # handling would cost more than the query.
    result = connection.execute(
        _BUSY[connection.dialect.name == "postgresql"],
        {
            "provider_id": provider_id,
            "start_at": start_at,
            "end_at": end_at,
            "earliest": start_at - LONGEST_BLOCK,
            "now": now,
        },
    )
    rows = result.all()
    if not rows:
        return Busy(spans=[], until=None, rules_version=None)
    holds = [hold_until for _, _, _, hold_until in rows if hold_until is not None]
    starts: list[datetime] = []
    if counted is not None:
        window = {"provider_id": provider_id, "start_at": counted[0], "end_at": counted[1]}
        starts = [row.start_at for row in connection.execute(_STARTS, window)]
    sessions = []
    if sessions_of is not None:
        asked = {"service_id": sessions_of, "earliest": start_at - LONGEST_BLOCK, "now": now}
        window = {"provider_id": provider_id, "start_at": start_at, "end_at": end_at}
        found = connection.execute(
            _SESSIONS[connection.dialect.name == "postgresql"], asked | window
        )
        sessions = [
            (row.start_at, row.blocked_start_at, row.blocked_end_at, row.taken) for row in found
        ]
    return Busy(
        spans=[(start, end) for _, start, end, _ in rows if start is not None],
        until=min(holds) if holds else None,
        rules_version=rows[0][0],
        starts=starts,
        sessions=sessions,
    )


# A group session's seats start together and count once.
_STARTS = (
    select(Appointment.session_key, Appointment.start_at)
    .where(
        Appointment.provider_id == _PROVIDER_ID,
        Appointment.start_at >= bindparam("start_at"),
        Appointment.start_at < bindparam("end_at"),
        takes_time(),
    )
    .distinct()
)


def _sessions(*, ranges: bool) -> Select[datetime, datetime, datetime, int]:
    """The sessions of one group service (seats taken under a capacity above 1) whose
    blocked time touches the window, with the seats each has taken (held ones while held)."""
    return (
        select(
            func.min(Appointment.start_at).label("start_at"),
            func.min(Appointment.blocked_start_at).label("blocked_start_at"),
            func.max(Appointment.blocked_end_at).label("blocked_end_at"),
            func.count().label("taken"),
        )
        .where(
            *blocking(
                _PROVIDER_ID,
                bindparam("start_at"),
                bindparam("end_at"),
                bindparam("earliest"),
                ranges=ranges,
            ),
            Appointment.service_id == bindparam("service_id"),
            Appointment.capacity > 1,
            or_(Appointment.status != _HELD, Appointment.hold_until > bindparam("now")),
        )
        .group_by(Appointment.session_key)
    )


_SESSIONS = {False: _sessions(ranges=False), True: _sessions(ranges=True)}
