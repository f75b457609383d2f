"""RFC 5545 documents, written with the icalendar library.

Every appointment is one event with UID ``<appointment id>@slotwise`` and the appointment's
SEQUENCE, so a calendar that received an invitation updates it on a later one; its times are
in UTC.

A recurring series is one event with a rule (docs/architecture.md, "Calendars: series"):
UID ``<series id>@slotwise``, ``DTSTART;TZID=<provider's zone>`` at the first occurrence's
wall time (never UTC: a UTC start moves the wall time across DST in common expanders),
``RRULE:FREQ=WEEKLY;INTERVAL=n;COUNT=c`` (COUNT, never UNTIL), the rule's occurrences that
are not booked (skipped, cancelled, declined) as ``EXDATE`` in the same TZID form, and each
booked occurrence that differs from what the rule gives (moved, another length or status) as
an override with ``RECURRENCE-ID;TZID=…`` = the instant the rule gives it. No RDATE. The
document carries the VTIMEZONE of every TZID it uses (``add_missing_timezones``).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from slotwise.scheduling import Pattern

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
class SeriesRule:
    """The rule of the series an entry is an occurrence of (``booking.facts.SeriesFacts``)."""

    series_id: uuid.UUID
    timezone: str
    first_time: datetime  # naive: a wall time in ``timezone``
    duration: timedelta
    every_weeks: int
    count: int
    sequence: int

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def recurrences_at(self) -> list[datetime]:
        """The instant of each occurrence the rule gives, as an expander finds it."""
        pattern = Pattern(self.first_time, self.every_weeks, self.count)
        return pattern.recurrences_at(self.zone)


@dataclass(frozen=True, slots=True)
class SessionSeats:
    """A group session's seats, as its provider's calendar shows them: its size, and the
    (name, email) of each attendee still booked."""

    capacity: int
    attendees: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """What a calendar needs to know of an appointment. A group session's event (its
    provider's, ``session``) has the session's key for ``appointment_id``, empty client
    fields, and an ATTENDEE per attendee instead."""

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
    series: SeriesRule | None = None
    recurrence_at: datetime | None = None
    session: SessionSeats | None = None


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
    if entry.series is not None and entry.recurrence_at is not None:
        rule = entry.series
        values.update(
            series_id=str(rule.series_id),
            series_timezone=rule.timezone,
            series_first_time=rule.first_time.isoformat(),
            series_duration_seconds=str(int(rule.duration.total_seconds())),
            series_every_weeks=str(rule.every_weeks),
            series_count=str(rule.count),
            series_sequence=str(rule.sequence),
            recurrence_at=entry.recurrence_at.astimezone(UTC).isoformat(),
        )
    return values


def series_snapshot(
    entries: list[CalendarEntry], *, stamp_at: datetime, method: Method
) -> dict[str, str]:
    """A whole series' invitation (the event with its rule, its exceptions and overrides) as
    JSON-safe values: ``entries`` are its booked occurrences as they are now."""
    return {
        "method": method.value,
        "stamp_at": stamp_at.astimezone(UTC).isoformat(),
        "occurrences": json.dumps(
            [snapshot(entry, stamp_at=stamp_at, method=method) for entry in entries]
        ),
    }


def from_snapshot(values: dict[str, str]) -> str:
    """The invitation a ``snapshot`` (or a ``series_snapshot``) describes, as an RFC 5545
    document. A series occurrence's own snapshot is its override alone (its change, told
    to a calendar that holds the series)."""
    method = Method(values["method"])
    stamp_at = datetime.fromisoformat(values["stamp_at"])
    if "occurrences" in values:
        found = [_entry_of(one) for one in json.loads(values["occurrences"])]
        return document(found, stamp_at=stamp_at, method=method)
    return document([_entry_of(values)], stamp_at=stamp_at, method=method, occurrences_only=True)


def _entry_of(values: dict[str, str]) -> CalendarEntry:
    series = None
    if "series_id" in values:
        series = SeriesRule(
            series_id=uuid.UUID(values["series_id"]),
            timezone=values["series_timezone"],
            first_time=datetime.fromisoformat(values["series_first_time"]),
            duration=timedelta(seconds=int(values["series_duration_seconds"])),
            every_weeks=int(values["series_every_weeks"]),
            count=int(values["series_count"]),
            sequence=int(values["series_sequence"]),
        )
    return CalendarEntry(
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
        series=series,
        recurrence_at=(
            datetime.fromisoformat(values["recurrence_at"]) if "recurrence_at" in values else None
        ),
    )


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
    if entry.series is not None and entry.recurrence_at is not None:
        return _override(entry, entry.series, stamp_at=stamp_at, method=method)
    vevent = Event()
    vevent.add("uid", uid_for(entry.appointment_id))
    vevent.add("dtstamp", stamp_at.astimezone(UTC))
    vevent.add("sequence", entry.sequence)
    vevent.add("dtstart", entry.start_at.astimezone(UTC))
    vevent.add("dtend", entry.end_at.astimezone(UTC))
    _describe(vevent, entry, status=_status(entry, method))
    return vevent


def _status(entry: CalendarEntry, method: Method) -> str:
    return "CANCELLED" if method is Method.CANCEL else STATUS.get(entry.status, "CONFIRMED")


def _describe(vevent: Event, entry: CalendarEntry, *, status: str) -> None:
    vevent.add("status", status)
    vevent.add("summary", entry.title)
    attendees = [(entry.client_name, entry.client_email)]
    description = f"{entry.title}: {entry.client_name} with {entry.provider_name}."
    if entry.session is not None:
        attendees = list(entry.session.attendees)
        taken, capacity = len(attendees), entry.session.capacity
        description = f"{entry.title}: a group session, {taken} of {capacity} seats taken."
    if entry.notes:
        description += f"\n\nNotes: {entry.notes}"
    vevent.add("description", description)
    vevent.add("organizer", _address(entry.provider_email, entry.provider_name))
    for name, email in attendees:
        vevent.add("attendee", _address(email, name, role="REQ-PARTICIPANT"))
    if entry.url:
        vevent.add("url", entry.url)


def _override(
    entry: CalendarEntry, rule: SeriesRule, *, stamp_at: datetime, method: Method
) -> Event:
    """One occurrence of a series as it differs from the rule: the series' UID, and the
    instant the rule gives it as RECURRENCE-ID, in the series' zone."""
    zone = rule.zone
    assert entry.recurrence_at is not None
    vevent = Event()
    vevent.add("uid", uid_for(rule.series_id))
    vevent.add("dtstamp", stamp_at.astimezone(UTC))
    vevent.add("recurrence-id", entry.recurrence_at.astimezone(zone))
    vevent.add("sequence", max(entry.sequence, rule.sequence))
    vevent.add("dtstart", entry.start_at.astimezone(zone))
    vevent.add("dtend", entry.end_at.astimezone(zone))
    _describe(vevent, entry, status=_status(entry, method))
    return vevent


_GONE = frozenset({"cancelled", "declined"})


def series_events(
    rule: SeriesRule, booked: list[CalendarEntry], *, stamp_at: datetime, method: Method
) -> list[Event]:
    """A series as one event with its rule (``booked``: its occurrences, any status), the
    rule's occurrences not booked as EXDATE, and every booked one whose time, length or
    status the rule does not give as an override next to it."""
    zone = rule.zone
    active = {
        entry.recurrence_at: entry
        for entry in booked
        if entry.recurrence_at is not None and entry.status not in _GONE
    }
    statuses = Counter(_status(entry, method) for entry in active.values())
    status = statuses.most_common(1)[0][0] if statuses else "CANCELLED"
    first = next(iter(active.values()), booked[0])
    master = Event()
    master.add("uid", uid_for(rule.series_id))
    master.add("dtstamp", stamp_at.astimezone(UTC))
    master.add("sequence", rule.sequence)
    master.add("dtstart", rule.first_time.replace(tzinfo=zone))
    master.add("duration", rule.duration)
    master.add("rrule", {"FREQ": "WEEKLY", "INTERVAL": rule.every_weeks, "COUNT": rule.count})
    _describe(master, first, status=status)
    pattern = Pattern(rule.first_time, rule.every_weeks, rule.count)
    missing = [
        wall.replace(tzinfo=zone)
        for wall, at in zip(pattern.wall_times(), rule.recurrences_at(), strict=True)
        if at not in active
    ]
    if missing:
        master.add("exdate", missing)
    events = [master]
    for at in sorted(active):
        entry = active[at]
        moved = entry.start_at != at or entry.end_at - entry.start_at != rule.duration
        if moved or _status(entry, method) != status:
            events.append(_override(entry, rule, stamp_at=stamp_at, method=method))
    return events


def document(
    entries: list[CalendarEntry],
    *,
    stamp_at: datetime,
    method: Method = Method.PUBLISH,
    name: str | None = None,
    occurrences_only: bool = False,
) -> str:
    """A VCALENDAR of the entries, as text (CRLF line ends, folded as RFC 5545 asks). The
    occurrences of a series are its event with a rule (``series_events``), unless
    ``occurrences_only``: then each is its override alone (one occurrence's change)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method.value)
    if name:
        calendar.add("x-wr-calname", name)
    series: dict[uuid.UUID, tuple[SeriesRule, list[CalendarEntry]]] = {}
    for entry in entries:
        if entry.series is None or entry.recurrence_at is None or occurrences_only:
            calendar.add_component(event(entry, stamp_at=stamp_at, method=method))
            continue
        series.setdefault(entry.series.series_id, (entry.series, []))[1].append(entry)
    for rule, booked in series.values():
        for vevent in series_events(rule, booked, stamp_at=stamp_at, method=method):
            calendar.add_component(vevent)
    if any(entry.series is not None for entry in entries):
        calendar.add_missing_timezones()
    text: str = calendar.to_ical().decode()
    return text
