"""The provider's busy time, as slot listings read it (`availability.busy.BusyReader`).

Booking owns what takes a provider's time (the active statuses, guests' holds, buffers);
availability declares the read it needs and receives `BUSY` from `main.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Select,
    String,
    and_,
    bindparam,
    case,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.engine import Connection

from slotwise.availability import sources
from slotwise.availability.busy import Busy, Moved, Taken
from slotwise.booking.models import HOLDING_STATUSES, Appointment
from slotwise.booking.repository import (
    LONGEST_BLOCK,
    RELEASED,
    RELEASED_STATUSES,
    blocking,
    takes_time,
)
from slotwise.providers.models import Provider

_PROVIDER_ID: BindParameter[uuid.UUID] = bindparam("provider_id")
_TAKING = frozenset(status.value for status in HOLDING_STATUSES)
_HOLDS = frozenset(status.value for status in RELEASED_STATUSES)

# What a listing keeps of each appointment it reads (`Taken`). Every row read takes time (the
# statements' conditions), so the status is read only as a hold's end: a held guest
# booking's, or a hold's (``booking.holds``); only those carry ``hold_until``. The day and
# week limits need when an appointment starts and which session it is, and so do a group
# service's sessions; only their reads give it (`_FULL`), the read of busy time leaves it
# unknown.
_HOLD_UNTIL = case((Appointment.status.in_(RELEASED), Appointment.hold_until)).label("hold_until")
# Not a hold that ended at ``now`` (only holds carry ``hold_until``: a verified guest
# booking's is cleared, ``booking.guests``).
_LIVE = or_(Appointment.hold_until.is_(None), Appointment.hold_until > bindparam("now"))
# The id as the driver gives it (SQLite: the 32 hex digits it stores; asyncpg: its own UUID,
# whose ``hex`` costs nothing), not parsed into a uuid.UUID: kept listings name appointments
# by those digits (`availability.busy.key`).
_ID = type_coerce(Appointment.id, String).label("id")
_SPAN = (_ID, Appointment.blocked_start_at, Appointment.blocked_end_at, _HOLD_UNTIL)
_FULL = (
    *_SPAN,
    Appointment.start_at,
    Appointment.session_key,
    Appointment.service_id,
    Appointment.capacity,
)
# What a change notice describes an appointment by (`availability.sources`).
_DESCRIBED = sources.BY_TABLE[Appointment.__tablename__].described_by


# The provider's row, joined to its blocked spans in the window (none: one row of nulls):
# the rules version comes in the same statement as the busy time, so hours a listing kept
# are proven current by the very read that gives it the bookings. Built once: executed
# with its parameters, it is compiled once per process.
def _busy(*, ranges: bool) -> Select[int, Any, datetime, datetime, datetime | None]:
    return (
        select(Provider.rules_version, *_SPAN)
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
                _LIVE,
            ),
        )
        .where(Provider.id == _PROVIDER_ID)
    )


# By dialect: on PostgreSQL the overlap also as the exclusion constraint's range, for its
# index (``repository.blocking``).
_BUSY = {False: _busy(ranges=False), True: _busy(ranges=True)}

_STARTS = select(*_FULL).where(
    Appointment.provider_id == _PROVIDER_ID,
    Appointment.start_at >= bindparam("start_at"),
    Appointment.start_at < bindparam("end_at"),
    takes_time(),
)


def _seats(*, ranges: bool) -> Select[Any]:
    """The seats of one group service's sessions (capacity above 1) whose blocked time
    touches the window (held ones while held)."""
    return select(*_FULL).where(
        *blocking(
            _PROVIDER_ID,
            bindparam("start_at"),
            bindparam("end_at"),
            bindparam("earliest"),
            ranges=ranges,
        ),
        Appointment.service_id == bindparam("service_id"),
        Appointment.capacity > 1,
        _LIVE,
    )


_SEATS = {False: _seats(ranges=False), True: _seats(ranges=True)}


class BookingsBusy:
    """Busy time from the appointments table (`availability.busy.BusyReader`)."""

    def read(
        self,
        connection: Connection,
        provider_id: uuid.UUID,
        start_at: datetime,
        end_at: datetime,
        *,
        now: datetime,
        counted: tuple[datetime, datetime] | None = None,
        sessions_of: uuid.UUID | None = None,
    ) -> Busy:
        """The provider's active appointments, and guest bookings held at ``now``, whose
        blocked span touches [start_at, end_at); with the provider's rules version;
        (``counted``) its appointments that take time and start within that window, as the
        booking write's limits count them; and (``sessions_of``) the seats of that group
        service's sessions in the window. Synchronous: run in SQLAlchemy's greenlet."""
        # Plain rows from a connection: a month can hold thousands, and the ORM's row
        # handling would cost more than the query.
        postgresql = connection.dialect.name == "postgresql"
        window = {
            "provider_id": provider_id,
            "start_at": start_at,
            "end_at": end_at,
            "earliest": start_at - LONGEST_BLOCK,
            "now": now,
        }
        rows = connection.execute(_BUSY[postgresql], window).all()
        if not rows:
            return Busy(taken={}, rules_version=None)
        # The rows unpacked as `_busy` selects them: named access would cost more than the
        # rest of the read for a month's thousands of rows.
        hexed = postgresql  # asyncpg's UUID gives its digits; SQLite's text is them
        taken = {
            (driver_id.hex if hexed else driver_id): Taken(None, start, end, True, hold_until)
            for _version, driver_id, start, end, hold_until in rows
            if driver_id is not None
        }
        # The same appointments, if they are there, and others: with their start and session.
        if counted is not None:
            weeks = {"provider_id": provider_id, "start_at": counted[0], "end_at": counted[1]}
            taken.update(_full(connection.execute(_STARTS, weeks)))
        if sessions_of is not None:
            seats = connection.execute(_SEATS[postgresql], window | {"service_id": sessions_of})
            taken.update(_full(seats))
        return Busy(taken=taken, rules_version=rows[0].rules_version)

    def taken(self, row: Mapping[str, object]) -> Taken:
        """A change notice's row (text and nulls, as JSON has them) as a `Taken`."""
        hold_until, service_id = row["hold_until"], row["service_id"]
        return _taken(
            str(row["status"]),
            _instant(row["start_at"]),
            _instant(row["blocked_start_at"]),
            _instant(row["blocked_end_at"]),
            None if hold_until is None else _instant(hold_until),
            uuid.UUID(str(row["session_key"])),
            None if service_id is None else uuid.UUID(str(service_id)),
            int(str(row["capacity"])),
        )


BUSY = BookingsBusy()


def moved(row: Mapping[str, Any]) -> Moved:
    """This process's change to an appointment, given as the row it wrote (its columns by
    name), as the change notice will describe it."""
    hold_until = row["hold_until"]
    return Moved(
        row["provider_id"],
        row["id"],
        _taken(
            row["status"],
            _aware(row["start_at"]),
            _aware(row["blocked_start_at"]),
            _aware(row["blocked_end_at"]),
            None if hold_until is None else _aware(hold_until),
            row["session_key"],
            row["service_id"],
            row["capacity"],
        ),
    )


def moved_appointment(appointment: Appointment) -> Moved:
    """This process's change to an appointment, given as the appointment after it."""
    return moved(
        {name: getattr(appointment, name) for name in _DESCRIBED}
        | {"provider_id": appointment.provider_id}
    )


def _key(driver_id: Any) -> str:
    """`availability.busy.key` of an id as `_ID` reads it."""
    return driver_id if isinstance(driver_id, str) else str(driver_id.hex)


def _full(rows: Iterable[Any]) -> dict[str, Taken]:
    """Rows of `_FULL` (all take time), by `availability.busy.key`."""
    return {
        _key(row.id): Taken(
            row.start_at,
            row.blocked_start_at,
            row.blocked_end_at,
            True,
            row.hold_until,
            row.session_key,
            row.service_id,
            row.capacity,
        )
        for row in rows
    }


def _taken(
    status: str,
    start_at: datetime,
    blocked_start_at: datetime,
    blocked_end_at: datetime,
    hold_until: datetime | None,
    session_key: uuid.UUID,
    service_id: uuid.UUID | None,
    capacity: int,
) -> Taken:
    """The one reading of an appointment's status: what takes time, what is only held."""
    return Taken(
        start_at=start_at,
        blocked_start_at=blocked_start_at,
        blocked_end_at=blocked_end_at,
        takes_time=status in _TAKING,
        hold_until=hold_until if status in _HOLDS else None,
        session_key=session_key,
        service_id=service_id,
        capacity=capacity,
    )


def _instant(value: object) -> datetime:
    """An instant as a change notice writes it: ISO 8601, with its offset (PostgreSQL) or
    in UTC without one (SQLite stores instants so: `db.types.UTCDateTime`)."""
    if not isinstance(value, str):
        raise ValueError(f"not an instant: {value!r}")
    return _aware(datetime.fromisoformat(value))


def _aware(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"not an instant: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
