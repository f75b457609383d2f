"""Busy time as a listing reads it, declared here and provided by the bookings' owner.

Availability sits below booking: it must not import booking's models or queries (an
import-linter contract holds it to that). What a listing needs of the bookings is this
one read, so availability declares it (`BusyReader`) and the application hands it
booking's implementation (`slotwise.booking.busy.busy_between`, wired in `main.py`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.engine import Connection


@dataclass(frozen=True, slots=True)
class Busy:
    """The provider's blocked spans that touch a window, as of ``now``.

    ``until``: when the first guest's hold among them ends (None: none is held), after
    which they are out of date though nothing was written. ``rules_version``: the
    provider's rules version, read in the same statement (None: no such provider), which
    proves hours kept between requests current (`availability.schedules`).
    """

    spans: list[tuple[datetime, datetime]]
    until: datetime | None
    rules_version: int | None
    # When the provider's bookings start, in the ``counted`` window asked for: what its day
    # and week limits count, a group session once (empty when not asked).
    starts: list[datetime] = field(default_factory=list)
    # The sessions of the group service asked for (``sessions_of``) that touch the window:
    # (start, blocked start, blocked end, seats taken); empty when not asked.
    sessions: list[tuple[datetime, datetime, datetime, int]] = field(default_factory=list)


class BusyReader(Protocol):
    """Reads `Busy` for a provider and a window [start_at, end_at) of instants.

    Synchronous, on a synchronous connection: the listing runs it inside SQLAlchemy's
    greenlet (`AsyncSession.run_sync`, or with a connection of its own checked out and
    returned in the same greenlet), so that its statements and their rows cross
    SQLAlchemy's async bridge once rather than at every step."""

    def __call__(
        self,
        connection: Connection,
        provider_id: uuid.UUID,
        start_at: datetime,
        end_at: datetime,
        *,
        now: datetime,
        counted: tuple[datetime, datetime] | None = None,
        sessions_of: uuid.UUID | None = None,
    ) -> Busy: ...
