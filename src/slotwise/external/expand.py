"""An iCalendar document read as busy time: the instants a provider is taken, within a window.

Parsed with ``icalendar``; Google's X-WR-TIMEZONE read as the calendar's zone
(``x-wr-timezone``: its UTC times are moved there, as Google shows them); recurrences
expanded with ``recurring-ical-events`` (RRULE with COUNT or UNTIL, RDATE, EXDATE,
RECURRENCE-ID overrides, each in its VTIMEZONE or IANA zone). What counts:

- an event with a time: from its start to its end, as instants; a floating time (no zone)
  is a wall time in the provider's zone, resolved as the scheduling core resolves wall
  times (RFC 5545: a skipped time is read with the offset before the gap, a repeated one
  is its first occurrence);
- an all-day event: the provider's local days it covers, midnight to midnight;
- not an event marked free (TRANSP:TRANSPARENT), cancelled (STATUS:CANCELLED, the whole
  event or one occurrence), or of no length; a tentative one only if the calendar says so;
- not an event Slotwise wrote itself (UID ``…@slotwise``: a booking, already busy as an
  appointment, written to the provider's calendar or subscribed there as a feed).

A document that cannot be read raises ``Unreadable``; the caller keeps the busy time of
the last one that could.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
import x_wr_timezone
from icalendar.parser.content_line import UFOLD

from slotwise import scheduling
from slotwise.external import plain

OWN_UID_SUFFIX = "@slotwise"  # calendars.ics.uid_for: what Slotwise writes
# The window is widened by a day each side for the query, then cut exactly: a floating or
# all-day event is placed in the provider's zone only after the expansion.
_SLACK = timedelta(days=1)


class Unreadable(Exception):
    """Not an iCalendar document this can read."""


@dataclass(frozen=True, slots=True)
class Busy:
    """The busy time found: merged, sorted intervals within the window, and how many event
    occurrences made it."""

    intervals: tuple[scheduling.Interval, ...]
    events: int


def busy_time(
    data: bytes | str,
    *,
    zone: ZoneInfo,
    start_at: datetime,
    end_at: datetime,
    tentative_busy: bool,
) -> Busy:
    """The busy time ``data`` gives within ``[start_at, end_at)`` (aware instants); an
    event reaching into the window counts whole (the window cuts nothing: a day's events
    stay the same rows as the window moves on). Plain events are read without the libraries
    (``plain``); the rest, or the whole document if its shape is not plain, with them."""
    lines = essentials(data)
    part = plain.split(lines)
    found: list[scheduling.Interval] = []
    if part is None:
        for calendar in _parsed("\r\n".join(lines) + "\r\n", multiple=True):
            found += _busy_of(calendar, zone, start_at, end_at, tentative_busy)
    else:
        zones = part.zones_document()
        if zones is not None:  # the calendar's own zones known before its times are read
            _parsed(zones, multiple=False)
        rest, events = part.sort(start_at.date(), end_at.date())
        (calendar,) = _parsed(rest, multiple=False)
        found += _busy_of(calendar, zone, start_at, end_at, tentative_busy)
        found += _plain_busy(calendar, events, zone, start_at, end_at, tentative_busy)
    found.sort(key=lambda interval: (interval.start_at, interval.end_at))
    return Busy(tuple(scheduling.merge(found)), len(found))


def _parsed(text: str, *, multiple: bool) -> list[icalendar.Calendar]:
    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise Unreadable(f"not an iCalendar document: {exc}") from exc
    if not calendars or (not multiple and len(calendars) != 1):
        raise Unreadable("not an iCalendar document: no VCALENDAR")
    for calendar in calendars:
        if calendar.name != "VCALENDAR":
            raise Unreadable(f"not an iCalendar document: a {calendar.name} where a VCALENDAR was")
    return list(calendars)


# The properties busy time is read from; every other one (descriptions, attendees, alarms'
# text...) is dropped before parsing, which is most of a calendar's text and most of the
# parser's time. A time zone definition is kept whole.
_READ = frozenset(
    {
        "BEGIN",
        "END",
        "VERSION",
        "UID",
        "DTSTART",
        "DTEND",
        "DURATION",
        "RRULE",
        "RDATE",
        "EXDATE",
        "EXRULE",
        "RECURRENCE-ID",
        "STATUS",
        "TRANSP",
        "X-WR-TIMEZONE",
    }
)


_FOLD = re.compile(r"\r?\n[ \t]")


def lines(text: str) -> list[str]:
    """The document's lines as icalendar's parser splits them (``NEWLINE.split(UFOLD.sub(
    "", text))``), blank ones included: a fold after blank lines is one only where there
    are any, and the parser's expressions take three times as long as these on a large
    calendar."""
    unfolded = UFOLD.sub("", text) if "\n\n" in text or "\n\r\n" in text else _FOLD.sub("", text)
    return unfolded.replace("\r\n", "\n").split("\n")


def essentials(data: bytes | str) -> list[str]:
    """The document's lines with only what busy time is read from: unfolded and split as
    icalendar's parser does it (RFC 5545 §3.1: a line ends with CRLF or LF; a fold is one
    followed by a space or a tab, blank lines between them), each property kept if busy
    time reads it or it is part of a VTIMEZONE. A name is read as the parser reads it
    (spaces in it dropped), and a BEGIN or END line that may be a VTIMEZONE's (however
    written) starts or ends one: what is kept is read as the whole document is."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    kept: list[str] = []
    in_zone = False
    for line in lines(text):
        name = line.split(":", 1)[0].split(";", 1)[0].strip().upper()
        if " " in name or "\t" in name:
            name = name.replace(" ", "").replace("\t", "")
        zone_line = name in ("BEGIN", "END") and "VTIMEZONE" in line.upper()
        if zone_line and name == "BEGIN":
            in_zone = True
        if in_zone:
            kept.append(line)
            in_zone = not (zone_line and name == "END")
        elif name in _READ:
            kept.append(line)
    return kept


def _busy_of(
    calendar: icalendar.Calendar,
    zone: ZoneInfo,
    start_at: datetime,
    end_at: datetime,
    tentative_busy: bool,
) -> list[scheduling.Interval]:
    try:
        standard = x_wr_timezone.to_standard(calendar)
        occurrences = _occurrences(standard, start_at - _SLACK, end_at + _SLACK)
    except Exception as exc:  # the libraries raise anything from a broken rule or date
        raise Unreadable(f"the calendar cannot be expanded: {type(exc).__name__}: {exc}") from exc
    found = []
    for event, start, end in occurrences:
        properties = (event.get(name, "") for name in ("UID", "STATUS", "TRANSP"))
        if not _counts(*(str(value) for value in properties), tentative_busy=tentative_busy):
            continue
        try:
            interval = _interval(start, end, zone)
        except (TypeError, ValueError, OverflowError, scheduling.OutOfRange):
            continue  # an event without a usable time: nothing can be busy of it
        if interval is not None and interval.start_at < end_at and start_at < interval.end_at:
            found.append(interval)
    return found


def _occurrences(
    calendar: icalendar.Calendar, start_at: datetime, end_at: datetime
) -> list[tuple[Any, date | datetime, date | datetime]]:
    """Each occurrence's event (an override's own, for a moved or cancelled one), start and
    end. The query's occurrences are read as they are: its public ``between`` copies every
    occurrence into a new component, two thirds of the time of a 5,000-event calendar
    (docs/benchmarks.md); a version without them takes that public way."""
    query = recurring_ical_events.of(calendar)
    between = getattr(query, "_occurrences_between", None)
    if between is not None:
        return [
            (occurrence._adapter._component, occurrence.start, occurrence.end)
            for occurrence in between(start_at, end_at)
        ]
    return [  # pragma: no cover - the public way, for a version without the above
        (event, event["DTSTART"].dt, event["DTEND"].dt if "DTEND" in event else event["DTSTART"].dt)
        for event in query.between(start_at, end_at)
    ]


def _plain_busy(
    calendar: icalendar.Calendar,
    events: list[plain.Plain],
    zone: ZoneInfo,
    start_at: datetime,
    end_at: datetime,
    tentative_busy: bool,
) -> list[scheduling.Interval]:
    """The plain events' busy time, as ``_busy_of`` reads an event: their times moved by
    X-WR-TIMEZONE as ``x-wr-timezone`` moves the libraries' (the calendar says its zone)."""
    calendar_zone = calendar.get(x_wr_timezone.X_WR_TIMEZONE)
    walker = (
        x_wr_timezone.UTCChangingWalker(ZoneInfo(str(calendar_zone))) if calendar_zone else None
    )
    found = []
    for event in events:
        if not _counts(event.uid, event.status, event.transp, tentative_busy=tentative_busy):
            continue
        start, end = event.start, event.end
        if walker is not None:
            start, end = walker.walk_value(start), walker.walk_value(end)
        try:
            interval = _interval(start, end, zone)
        except (TypeError, ValueError, OverflowError, scheduling.OutOfRange):
            continue
        if interval is not None and interval.start_at < end_at and start_at < interval.end_at:
            found.append(interval)
    return found


def _counts(uid: str, status: str, transp: str, *, tentative_busy: bool) -> bool:
    """Whether an event is busy time: not Slotwise's own, not free, not cancelled, and not
    tentative unless the calendar says so (an empty STATUS or TRANSP: not written)."""
    if uid.endswith(OWN_UID_SUFFIX):
        return False
    if transp.upper() == "TRANSPARENT":
        return False
    status = status.upper() or "CONFIRMED"
    if status == "CANCELLED":
        return False
    return tentative_busy or status != "TENTATIVE"


def _interval(
    start: date | datetime, end: date | datetime, zone: ZoneInfo
) -> scheduling.Interval | None:
    start_at, end_at = _instant(start, zone), _instant(end, zone)
    if end_at <= start_at:
        return None  # no length: a moment, not busy time
    return scheduling.Interval(start_at, end_at)


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    """An event's start or end as an instant: an aware time as it is; a floating time in the
    provider's zone; a date (all day) as the provider's midnight that starts it (an end date
    is exclusive, as RFC 5545's DTEND of an all-day event is)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return scheduling.resolve_wall_time(value.date(), value.time(), zone)
        return value.astimezone(UTC)
    return scheduling.day_extent(value, zone).start_at
