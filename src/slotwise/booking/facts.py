"""What booking tells the rest of the application about an appointment: plain values.

Notifications and calendars work from these, never from the ORM ``Appointment``: they import
nothing else of booking (an import-linter contract in pyproject.toml holds it), so booking's
tables and write paths can change without them. This module imports no SQLAlchemy; booking
builds the values (``booking.publish``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    # A guest's booking held until the guest follows the link mailed to them (the
    # provider's ``verify_guest_email``), or until ``hold_until``: after it, the time is free.
    PENDING_VERIFICATION = "pending_verification"
    # A slot held for someone filling in a form (``booking.holds``), until ``hold_until``:
    # not yet a booking (no client, no history, no messages); only its token books it.
    HELD = "held"


@dataclass(frozen=True, slots=True)
class Party:
    """Someone a message about an appointment goes to, and their time zone."""

    email: str
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class Parties:
    """Who an appointment is between, and what it is called (the service with the provider)."""

    provider: Party
    client: Party
    title: str


@dataclass(frozen=True, slots=True)
class SeriesFacts:
    """The rule of a recurring series an appointment is an occurrence of: every
    ``every_weeks`` weeks from the wall time ``first_time`` (naive) in ``timezone``, ``count``
    occurrences of ``duration``; ``sequence`` is its calendar event's (the RRULE's)."""

    series_id: uuid.UUID
    timezone: str
    first_time: datetime
    duration: timedelta
    every_weeks: int
    count: int
    sequence: int


@dataclass(frozen=True, slots=True)
class BookingFacts:
    """One appointment as of a change: its time (UTC instants, and the provider's zone), its
    status, its parties and title, and its iCalendar ``sequence``. ``manage_url`` is a
    guest's link to manage it, set only where the change mails one (a secret)."""

    appointment_id: uuid.UUID
    provider_id: uuid.UUID
    start_at: datetime
    end_at: datetime
    timezone: str
    status: Status
    sequence: int
    parties: Parties
    notes: str | None = None
    cancel_reason: str | None = None
    hold_until: datetime | None = None
    manage_url: str | None = None
    # An occurrence of a series: the series, and the instant its rule gives the occurrence.
    series: SeriesFacts | None = None
    recurrence_at: datetime | None = None

    @property
    def title(self) -> str:
        return self.parties.title


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """A group session as its provider's calendar shows it: one event for all its seats.
    ``attendees`` are the clients of the seats still booked (not cancelled or declined); its
    status is cancelled when there are none. Built for the provider only: an attendee's own
    calendar shows their seat as a ``BookingFacts`` naming the provider and them alone.
    ``sequence`` grows with each seat taken and each change to one; ``notes`` are the
    attendees' notes, each after its attendee's name."""

    session_key: uuid.UUID
    provider_id: uuid.UUID
    start_at: datetime
    end_at: datetime
    timezone: str
    status: Status
    sequence: int
    title: str
    provider: Party
    capacity: int
    attendees: tuple[Party, ...]
    notes: str | None = None


def title(provider_name: str, service_name: str | None) -> str:
    """An appointment's title: the service with the provider, or an appointment with them."""
    if service_name:
        return f"{service_name} with {provider_name}"
    return f"Appointment with {provider_name}"
