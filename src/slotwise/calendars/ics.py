"""RFC 5545 documents, written with the icalendar library; times in UTC.

Every appointment is one event with UID ``<appointment id>@slotwise`` and the appointment's
SEQUENCE, so a calendar that received an invitation updates it on a later one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//Slotwise//Appointments//EN"


class Method(StrEnum):
    PUBLISH = "PUBLISH"
    REQUEST = "REQUEST"
    CANCEL = "CANCEL"


# Appointment status -> iCalendar STATUS.
STATUS = {
    "pending": "TENTATIVE",
    "pending_verification": "TENTATIVE",
    "confirmed": "CONFIRMED",
    "completed": "CONFIRMED",
    "no_show": "CONFIRMED",
    "declined": "CANCELLED",
    "cancelled": "CANCELLED",
}


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """What a calendar needs to know of an appointment."""

    appointment_id: uuid.UUID
    sequence: int
    status: str
    start_at: datetime
    end_at: datetime
    title: str
    provider_name: str
    provider_email: str
    client_name: str
    client_email: str
    notes: str | None = None
    url: str | None = None


def snapshot(entry: CalendarEntry, *, stamp_at: datetime, method: Method) -> dict[str, str]:
    """An invitation as JSON-safe values, to be rendered when it is sent (``from_snapshot``).

    Rendering with icalendar costs more than the rest of a booking's outbox rows together;
    the outbox keeps what the invitation says, as of the change, and the sender renders it.
    """
    values = {
        "method": method.value,
        "stamp_at": stamp_at.astimezone(UTC).isoformat(),
        "appointment_id": str(entry.appointment_id),
        "sequence": str(entry.sequence),
        "status": entry.status,
        "start_at": entry.start_at.astimezone(UTC).isoformat(),
        "end_at": entry.end_at.astimezone(UTC).isoformat(),
        "title": entry.title,
        "provider_name": entry.provider_name,
        "provider_email": entry.provider_email,
        "client_name": entry.client_name,
        "client_email": entry.client_email,
    }
    if entry.notes:
        values["notes"] = entry.notes
    return values


def from_snapshot(values: dict[str, str]) -> str:
    """The invitation a ``snapshot`` describes, as an RFC 5545 document."""
    entry = CalendarEntry(
        appointment_id=uuid.UUID(values["appointment_id"]),
        sequence=int(values["sequence"]),
        status=values["status"],
        start_at=datetime.fromisoformat(values["start_at"]),
        end_at=datetime.fromisoformat(values["end_at"]),
        title=values["title"],
        provider_name=values["provider_name"],
        provider_email=values["provider_email"],
        client_name=values["client_name"],
        client_email=values["client_email"],
        notes=values.get("notes"),
    )
    method = Method(values["method"])
    return document([entry], stamp_at=datetime.fromisoformat(values["stamp_at"]), method=method)


def uid_for(appointment_id: uuid.UUID) -> str:
    return f"{appointment_id}@slotwise"


def _address(email: str, name: str, *, role: str | None = None) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["cn"] = vText(name)
    if role is not None:
        address.params["role"] = vText(role)
        address.params["partstat"] = vText("ACCEPTED")
    return address


def event(entry: CalendarEntry, *, stamp_at: datetime, method: Method) -> Event:
    vevent = Event()
    vevent.add("uid", uid_for(entry.appointment_id))
    vevent.add("dtstamp", stamp_at.astimezone(UTC))
    vevent.add("sequence", entry.sequence)
    vevent.add("dtstart", entry.start_at.astimezone(UTC))
    vevent.add("dtend", entry.end_at.astimezone(UTC))
    status = "CANCELLED" if method is Method.CANCEL else STATUS.get(entry.status, "CONFIRMED")
    vevent.add("status", status)
    vevent.add("summary", entry.title)
    description = f"{entry.title}: {entry.client_name} with {entry.provider_name}."
    if entry.notes:
        description += f"\n\nNotes: {entry.notes}"
    vevent.add("description", description)
    vevent.add("organizer", _address(entry.provider_email, entry.provider_name))
    vevent.add("attendee", _address(entry.client_email, entry.client_name, role="REQ-PARTICIPANT"))
    if entry.url:
        vevent.add("url", entry.url)
    return vevent


def document(
    entries: list[CalendarEntry],
    *,
    stamp_at: datetime,
    method: Method = Method.PUBLISH,
    name: str | None = None,
) -> str:
    """A VCALENDAR of the entries, as text (CRLF line ends, folded as RFC 5545 asks)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method.value)
    if name:
        calendar.add("x-wr-calname", name)
    for entry in entries:
        calendar.add_component(event(entry, stamp_at=stamp_at, method=method))
    text: str = calendar.to_ical().decode()
    return text
