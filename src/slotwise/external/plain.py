"""A calendar document split before it is parsed: its plain events read here, the rest left
to icalendar's parser and recurring-ical-events (``expand``).

A plain event is one occurrence and nothing else can change it: one DTSTART and one DTEND
of the same kind (two dates, two aware times or two floating ones) with the end after the
start, a UID no other event of the calendar has (no override can refer to it), no RRULE,
RDATE, EXDATE, EXRULE, RECURRENCE-ID or DURATION. Most of a real calendar is plain, and
the libraries cost it most of a sync: icalendar's parser builds a component and a
parameter dictionary for every line, recurring-ical-events a series for every event
(docs/benchmarks.md, section 10). A plain event's busy time is its start and end, so only
those two lines are read, with the value types icalendar's parser uses
(``TypesFactory``: the same TZID lookup, VTIMEZONEs included, once the calendar's zones are
parsed), and its UID, STATUS and TRANSP as written (the libraries strip nothing).

Only what is written as the parser would read it the same way is read here: a DTSTART or
DTEND with no parameter but TZID and VALUE, none quoted, escaped, a list or with a space
around it (the parser drops those spaces), a STATUS or TRANSP without parameters, and no
backslash in a value (the parser unescapes it); anything else goes to the libraries as the
whole document did before. A document whose shape is not plain goes to them whole, and
they say what is wrong: text outside a VCALENDAR, unbalanced BEGIN and END, more than one
VCALENDAR, a BEGIN or END line with spaces or parameters, a VTIMEZONE inside another
component or a VEVENT inside an event, or a UID line not written ``UID:value``
(``split``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from icalendar.prop import TypesFactory

_RECURRENCE = frozenset({"RRULE", "RDATE", "EXDATE", "EXRULE", "RECURRENCE-ID", "DURATION"})
_ONCE = ("UID", "DTSTART", "DTEND")
_STRUCTURE = frozenset({"BEGIN", "END"})
_STRUCTURE_LINE = re.compile(r"(BEGIN|END):([A-Z0-9-]+)", re.IGNORECASE)
_WRITTEN_UID = re.compile(r"UID:[^\\]*", re.IGNORECASE)
# A DTSTART or DTEND line read here: its TZID and VALUE parameters (no quote, RFC 6868 or
# backslash escape, list, equals sign, control character, or space around them: what
# icalendar's parser changes or drops) and a value without a backslash (what it
# unescapes); STATUS and TRANSP without parameters. What is read is then what the
# libraries read, as written.
_PARAMETER = r"[^\x00-\x20\x7f\";:,=\\^](?:[^\x00-\x1f\x7f\";:,=\\^]*[^\x00-\x20\x7f\";:,=\\^])?"
_TIME_LINE = re.compile(
    rf"(DTSTART|DTEND)((?:;(?:TZID|VALUE)={_PARAMETER})*):([^\\]*)", re.IGNORECASE
)
_TEXT_LINE = re.compile(r"(?:STATUS|TRANSP):([^\\]*)", re.IGNORECASE)
_LINE = {"DTSTART": _TIME_LINE, "DTEND": _TIME_LINE, "STATUS": _TEXT_LINE, "TRANSP": _TEXT_LINE}
_SLACK = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class Plain:
    """A plain event: what busy time is read from (UID, STATUS and TRANSP as written)."""

    uid: str
    status: str
    transp: str
    start: date | datetime
    end: date | datetime


@dataclass(slots=True)
class _Event:
    lines: list[str] = field(default_factory=list)
    # The event's own properties (not those of an alarm inside it): name -> lines.
    properties: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Part:
    """One VCALENDAR of the document: its own lines (properties, zones, other components),
    and its events, to be sorted into plain ones and the libraries' (``sort``)."""

    lines: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)

    def zones_document(self) -> str | None:
        """The calendar's VTIMEZONEs alone, or None if it has none: parsed first, so a
        plain event's TZID finds its definition as the parser would."""
        if not self.zones:
            return None
        return _document(["BEGIN:VCALENDAR", *self.zones, "END:VCALENDAR"])

    def sort(self, first_date: date, last_date: date) -> tuple[str, list[Plain]]:
        """The document left to the libraries (the calendar with the events that are not
        plain), and the plain events read. What cannot reach ``first_date`` to
        ``last_date`` by its dates as written (two days aside: a date as written is in any
        zone) is left out unread: a plain event that ends before them or starts after, and
        a recurring event (with its overrides: its UID's events) whose every rule ends
        before them (UNTIL; a COUNT or an RDATE is not read, and keeps it)."""
        uids = Counter(uid for event in self.events for uid in _uids(event))
        plain: list[Plain] = []
        rest = [*self.lines[:-1], *self.zones]
        reach = (first_date - _SLACK, last_date + _SLACK)
        ended = _ended_series(self.events, uids, reach[0])
        for event in self.events:
            if not _is_plain(event, uids):
                if _uid(event) not in ended:
                    rest += event.lines
            elif _outside(event, *reach):
                continue
            elif (read := _read(event)) is None:
                rest += event.lines
            else:
                plain.append(read)
        return _document([*rest, self.lines[-1]]), plain


def split(lines: Iterable[str]) -> Part | None:
    """The document's VCALENDAR (unfolded lines), or None if its shape is not the plain one
    and the libraries read it whole: text outside the VCALENDAR, unbalanced BEGIN and END,
    or anything written where the libraries could read it otherwise than the split.

    - A second VCALENDAR: a zone one of them defines may be another's, and icalendar's
      parser reads the whole document again when a time refers to a zone defined later.
    - A BEGIN or END line not written ``BEGIN:NAME`` (the libraries keep spaces around a
      component's name), or a property's name with a space in it (they drop it).
    - A VTIMEZONE anywhere but in the VCALENDAR itself (the parser knows it once it has
      reached it, the split only the calendar's own zones), a VEVENT inside another
      (recurring-ical-events reads it, the split reads the outer one alone).
    - A UID line not written ``UID:value`` with no backslash in the value: events are told
      apart by their UIDs as written, as the libraries tell them apart.
    """
    parts: list[Part] = []
    stack: list[str] = []
    event: _Event | None = None
    for line in lines:
        name = line.partition(":")[0].split(";", 1)[0].strip().upper()
        component = ""
        if name in _STRUCTURE or " " in name or "\t" in name:
            if (written := _STRUCTURE_LINE.fullmatch(line)) is None:
                return None
            name, component = written[1].upper(), written[2].upper()
        if name == "BEGIN":
            if not stack:
                if parts or component != "VCALENDAR":
                    return None
                parts.append(Part())
            elif len(stack) == 1 and component == "VEVENT":
                event = _Event()
            elif (component == "VTIMEZONE" and len(stack) != 1) or (
                component == "VEVENT" and event is not None
            ):
                return None
            if event is not None:
                event.lines.append(line)
            elif component == "VTIMEZONE" or stack[1:2] == ["VTIMEZONE"]:
                parts[-1].zones.append(line)
            else:
                parts[-1].lines.append(line)
            stack.append(component)
        elif name == "END":
            if not stack or stack[-1] != component:
                return None
            ended = stack.pop()
            if event is not None:
                event.lines.append(line)
                if len(stack) == 1:
                    parts[-1].events.append(event)
                    event = None
            elif ended == "VTIMEZONE" or stack[1:2] == ["VTIMEZONE"]:
                parts[-1].zones.append(line)
            else:
                parts[-1].lines.append(line)
        elif not stack or (name == "UID" and _WRITTEN_UID.fullmatch(line) is None):
            return None
        elif event is not None:
            event.lines.append(line)
            if len(stack) == 2:
                event.properties.setdefault(name, []).append(line)
        elif stack[1:2] == ["VTIMEZONE"]:
            parts[-1].zones.append(line)
        else:
            parts[-1].lines.append(line)
    return parts[0] if parts and not stack else None


def _document(lines: list[str]) -> str:
    return "\r\n".join(lines) + "\r\n"


def _uids(event: _Event) -> list[str]:
    """The values of the event's UID lines, as written (``split``: as the libraries read
    them)."""
    return [line.partition(":")[2] for line in event.properties.get("UID", ())]


def _uid(event: _Event) -> str | None:
    """The event's UID, or None if it has none or more than one."""
    found = _uids(event)
    return found[0] if len(found) == 1 else None


def _is_plain(event: _Event, uids: Counter[str]) -> bool:
    properties = event.properties
    if not _RECURRENCE.isdisjoint(properties):
        return False
    if any(len(properties.get(name, ())) != 1 for name in _ONCE):
        return False
    uid = _uid(event)
    if uid is None or uids[uid] != 1 or any(len(one) != 1 for one in properties.values()):
        return False
    return all(_LINE[name].fullmatch(properties[name][0]) for name in _LINE if name in properties)


def _outside(event: _Event, first_date: date, last_date: date) -> bool:
    """Whether the event's dates as written (``YYYYMMDD`` first in its values) end before
    ``first_date`` or start after ``last_date``; False if they do not read so."""
    start = _written_date(event.properties["DTSTART"][0])
    end = _written_date(event.properties["DTEND"][0])
    return (end is not None and end < first_date) or (start is not None and start > last_date)


def _ended_series(events: list[_Event], uids: Counter[str], first_date: date) -> set[str | None]:
    """The UIDs of the events that are not plain whose every occurrence ends before
    ``first_date`` by its dates as written; an event without a UID is never among them."""
    ended: dict[str, bool] = {}
    for event in events:
        if _is_plain(event, uids):
            continue
        found = _uids(event)
        before = len(found) == 1 and _ends_before(event, first_date)
        for uid in found:
            ended[uid] = ended.get(uid, True) and before
    return {uid for uid, before in ended.items() if before}


def _ends_before(event: _Event, first_date: date) -> bool:
    """Whether every occurrence of the event ends before ``first_date``: its DTSTART and
    DTEND, and its rule's UNTIL plus the days the event spans, all before it. Not if one
    of those lines has a quote or a backslash: its value may not start at its first colon
    for the parser."""
    properties = event.properties
    if not {"RDATE", "EXRULE", "DURATION"}.isdisjoint(properties):
        return False
    read = (line for name in ("DTSTART", "DTEND", "RRULE") for line in properties.get(name, ()))
    if any('"' in line or "\\" in line for line in read):
        return False
    if len(properties.get("DTSTART", ())) != 1 or len(properties.get("DTEND", ())) != 1:
        return False
    start = _written_date(properties["DTSTART"][0])
    end = _written_date(properties["DTEND"][0])
    if start is None or end is None:
        return False
    last_end = max(start, end)
    rules = properties.get("RRULE", [])
    if len(rules) > 1:
        return False
    if rules:
        parts = dict(
            part.partition("=")[::2] for part in rules[0].partition(":")[2].upper().split(";")
        )
        until = _date_of(parts.get("UNTIL", ""))
        if "COUNT" in parts or until is None:
            return False
        try:
            last_end = max(last_end, until + max(end - start, timedelta(0)))
        except OverflowError:
            return False
    return last_end < first_date


def _written_date(line: str) -> date | None:
    return _date_of(line.partition(":")[2])


def _date_of(value: str) -> date | None:
    """The date a DATE or DATE-TIME value begins with (``YYYYMMDD``), or None."""
    text = value.strip()[:8]
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _read(event: _Event) -> Plain | None:
    properties = event.properties
    uid = _uid(event)
    assert uid is not None  # a plain event's
    try:
        start = _value(properties["DTSTART"][0])
        end = _value(properties["DTEND"][0])
    except (ValueError, TypeError, KeyError, OverflowError):
        return None  # the libraries read it and say what is wrong
    if start is None or end is None or not _same_kind(start, end) or not start < end:
        return None
    return Plain(
        uid=uid,
        status=_text(properties.get("STATUS")),
        transp=_text(properties.get("TRANSP")),
        start=start,
        end=end,
    )


def _value(line: str) -> date | datetime | None:
    """A DTSTART or DTEND line's value as icalendar's parser reads it (``_TIME_LINE``), or
    None if a parameter is given twice."""
    head, _, text = line.partition(":")
    name, *parameters = head.split(";")
    given: dict[str, str] = {}
    for parameter in parameters:
        key, _, written = parameter.partition("=")
        if key.upper() in given:
            return None
        given[key.upper()] = written
    value_type = given.get("VALUE")
    factory: Any = TypesFactory.instance().for_property(
        name.upper(), value_type.upper() if value_type else None
    )
    tzid = given.get("TZID")
    value = factory.from_ical(text, tzid) if tzid else factory.from_ical(text)
    return value if isinstance(value, date) else None


def _same_kind(start: date | datetime, end: date | datetime) -> bool:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (start.tzinfo is None) == (end.tzinfo is None)
    return not isinstance(start, datetime) and not isinstance(end, datetime)


def _text(lines: list[str] | None) -> str:
    return lines[0].partition(":")[2] if lines else ""
