"""Group sessions: a service with a capacity above 1 is booked seat by seat.

A session is the service at one start: every seat of it shares the session's key
(`session_key_for`), which the database's no-overlap rule reads as "the same booking of the
provider's time" (migration 0014). So a session blocks the provider's time once however many
attendees it has, while a different session, or a one-to-one booking, that overlaps it is
refused as before. A listing offers the start of a session that has free seats (with how many),
and no other time that overlaps it (`open_seats`).
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from slotwise.scheduling.intervals import Interval
from slotwise.scheduling.slots import ServiceSpec, Slot

# Fixed for ever: the keys of sessions already booked are derived from it.
SESSION_NAMESPACE = uuid.UUID("0f7c3c1e-5b0a-4c8e-9a57-53e55e0a0018")


def session_key_for(
    provider_id: uuid.UUID, service_id: uuid.UUID | None, start_at: datetime
) -> uuid.UUID:
    """The key every seat of the provider's session of a service at ``start_at`` shares: the
    same instant gives the same key, whatever offset it was written with."""
    instant = start_at.astimezone(UTC).isoformat()
    return uuid.uuid5(SESSION_NAMESPACE, f"{provider_id}/{service_id}/{instant}")


@dataclass(frozen=True, slots=True)
class Session:
    """A session of the listed service as booked: its start, the provider's time its seats
    block, and how many seats are taken."""

    start_at: datetime
    blocked: Interval
    taken: int


def outside_sessions(busy: Iterable[Interval], sessions: Sequence[Session]) -> list[Interval]:
    """The busy time other than the sessions' seats: a seat does not close its own session
    to the next attendee (what else a session's time closes, `open_seats` says)."""
    spans = {session.blocked for session in sessions}
    return [interval for interval in busy if interval not in spans]


@dataclass(frozen=True, slots=True)
class OpenSeats:
    slot: Slot
    seats_left: int


def open_seats(
    slots: Iterable[Slot], sessions: Sequence[Session], service: ServiceSpec
) -> list[OpenSeats]:
    """The slots a group service offers, with their free seats: the start of a session has
    the seats it has left (none: not offered); any other slot whose blocked time overlaps a
    session is not offered (a new session there would take the same provider time); the
    rest start a new session, with every seat free. ``slots`` are those free of the other
    busy time (`outside_sessions`)."""
    by_start = {session.start_at: session for session in sessions}
    offered: list[OpenSeats] = []
    for slot in slots:
        session = by_start.get(slot.start_at)
        if session is not None:
            left = service.capacity - session.taken
            if left > 0:
                offered.append(OpenSeats(slot, left))
            continue
        blocked = Interval(
            slot.start_at - service.buffer_before, slot.end_at + service.buffer_after
        )
        if not any(blocked.overlaps(session.blocked) for session in sessions):
            offered.append(OpenSeats(slot, service.capacity))
    return offered
