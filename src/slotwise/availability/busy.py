"""Busy time as a listing reads it, declared here and provided by the bookings' owner.

Availability sits below booking: it must not import booking's models or queries (an
import-linter contract holds it to that). What a listing needs of the bookings is one read
and one reading of a changed row, so availability declares them (`BusyReader`) and the
application hands it booking's implementation (`slotwise.booking.busy.BUSY`, wired in
`main.py`).

A listing keeps each appointment it read as a `Taken`, by id, so that a booking's change
(a `Moved`: the appointment as it is after the change) can be applied to a kept listing
instead of voiding it (`availability.cache`): the spans and counts the slots are computed
from are derived from the `Taken` by the same functions, fresh or revised.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from sqlalchemy.engine import Connection


class Taken(NamedTuple):
    """One appointment of the provider, as listings count it.

    ``start_at``: None when not read (the day and week limits need it, and a group
    service's sessions; only they read it, and an appointment they count has it).
    ``takes_time``: its status takes the provider's time (and counts toward the day and
    week limits). ``hold_until``: a held guest booking's end of hold, after which its time
    is free again though nothing was written (None: not held). ``session_key``,
    ``service_id``, ``capacity``: the session it is a seat of (a one-to-one appointment is a
    session of its own), read with ``start_at``. A named tuple: a month's listing makes
    thousands, and a tuple is made at a fraction of a dataclass's cost.
    """

    start_at: datetime | None
    blocked_start_at: datetime
    blocked_end_at: datetime
    takes_time: bool
    hold_until: datetime | None = None
    session_key: uuid.UUID | None = None
    service_id: uuid.UUID | None = None
    capacity: int = 1

    def blocks(self, start_at: datetime, end_at: datetime, now: datetime) -> bool:
        """Whether it takes time in [start_at, end_at) at ``now``."""
        return (
            self.takes_time
            and (self.hold_until is None or self.hold_until > now)
            and self.blocked_start_at < end_at
            and self.blocked_end_at > start_at
        )


def key(appointment_id: uuid.UUID) -> str:
    """How kept listings name an appointment: its id's 32 hex digits (what SQLite stores and
    PostgreSQL's driver gives at no cost; a month's listing reads thousands)."""
    return appointment_id.hex


@dataclass(frozen=True, slots=True)
class Moved:
    """An appointment as a committed change left it (``taken`` None: deleted)."""

    provider_id: uuid.UUID
    appointment_id: uuid.UUID
    taken: Taken | None


@dataclass(frozen=True, slots=True)
class Busy:
    """The provider's appointments a listing counts, read with its rules version.

    ``taken``: by id, those whose blocked span touches the window asked for and that take
    time at ``now``, (``counted`` asked) those that take time and start within it, and
    (``sessions_of`` asked) the seats of that group service's sessions in the window.
    ``rules_version``: the provider's, read in the same statement (None: no such provider),
    which proves hours kept between requests current (`availability.schedules`).
    """

    taken: dict[str, Taken]  # by `key`
    rules_version: int | None


def spans(
    taken: Iterable[Taken], start_at: datetime, end_at: datetime, now: datetime
) -> list[tuple[datetime, datetime]]:
    """The blocked spans that take time in [start_at, end_at) at ``now`` (in no order).
    `Taken.blocks`, written out here and in `first_hold_end`: a month's listing asks it of
    thousands of appointments, and the method call is a measurable share of that."""
    return [
        (one.blocked_start_at, one.blocked_end_at)
        for one in taken
        if one.takes_time
        and (one.hold_until is None or one.hold_until > now)
        and one.blocked_start_at < end_at
        and one.blocked_end_at > start_at
    ]


def first_hold_end(
    taken: Iterable[Taken], start_at: datetime, end_at: datetime, now: datetime
) -> datetime | None:
    """When the first hold among the spans that block [start_at, end_at) ends (None: none
    is held): from then on a listing of them is out of date."""
    ends = [
        one.hold_until
        for one in taken
        if one.hold_until is not None
        and one.hold_until > now
        and one.takes_time
        and one.blocked_start_at < end_at
        and one.blocked_end_at > start_at
    ]
    return min(ends) if ends else None


def starts(taken: Iterable[Taken], counted: tuple[datetime, datetime]) -> list[datetime]:
    """When the sessions that take time start within ``counted`` (a group session once, a
    one-to-one appointment being a session of its own): what the provider's day and week
    limits count."""
    first, after = counted
    return list(
        {
            one.session_key: one.start_at
            for one in taken
            if one.takes_time and one.start_at is not None and first <= one.start_at < after
        }.values()
    )


@dataclass(frozen=True, slots=True)
class Seated:
    """A session of a group service: when it starts, its blocked span, its seats taken."""

    start_at: datetime
    blocked_start_at: datetime
    blocked_end_at: datetime
    taken: int


def sessions(
    taken: Iterable[Taken],
    service_id: uuid.UUID,
    start_at: datetime,
    end_at: datetime,
    now: datetime,
) -> list[Seated]:
    """The sessions of a group service whose seats take time in [start_at, end_at) at
    ``now``, with their seats taken."""
    grouped: dict[uuid.UUID, list[Taken]] = {}
    for one in taken:
        if (
            one.service_id == service_id
            and one.capacity > 1
            and one.session_key is not None
            and one.start_at is not None
            and one.blocks(start_at, end_at, now)
        ):
            grouped.setdefault(one.session_key, []).append(one)
    return [
        Seated(
            min(seat.start_at for seat in seats if seat.start_at is not None),
            min(seat.blocked_start_at for seat in seats),
            max(seat.blocked_end_at for seat in seats),
            len(seats),
        )
        for seats in grouped.values()
    ]


class BusyReader(Protocol):
    """Booking's side of busy time: the read, and a changed row read back as `Taken`."""

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
        """The `Busy` of a provider for the window [start_at, end_at) of instants; with
        (``counted``) the appointments the day and week limits count, and (``sessions_of``)
        the seats of that group service's sessions, their start and session read.

        Synchronous, on a synchronous connection: the listing runs it inside SQLAlchemy's
        greenlet (`AsyncSession.run_sync`, or with a connection of its own checked out and
        returned in the same greenlet), so that its statements and their rows cross
        SQLAlchemy's async bridge once rather than at every step."""
        ...

    def taken(self, row: Mapping[str, object]) -> Taken:
        """An appointment row as the database's change notices describe it (the columns
        `availability.sources` declares for appointments, as JSON gives them: text and
        nulls) read as a `Taken`."""
        ...
