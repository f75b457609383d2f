"""Fixture calendars read as busy time, each with the exact intervals it must give (a
provider in New York; the US changes to summer time on 2027-03-14)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar.parser.content_line import NEWLINE, UFOLD

from slotwise.external import expand
from tests.external.ics_server import FILES

NEW_YORK = ZoneInfo("America/New_York")
START_AT = datetime(2027, 2, 28, tzinfo=UTC)
END_AT = datetime(2027, 4, 30, tzinfo=UTC)


def busy(
    name: str, *, tentative_busy: bool = True, start_at: datetime = START_AT
) -> list[tuple[str, str]]:
    found = expand.busy_time(
        (FILES / name).read_bytes(),
        zone=NEW_YORK,
        start_at=start_at,
        end_at=END_AT,
        tentative_busy=tentative_busy,
    )
    return [(one.start_at.isoformat()[:16], one.end_at.isoformat()[:16]) for one in found.intervals]


def test_a_weekly_meeting_across_dst_with_one_moved_and_one_removed() -> None:
    # Tuesdays 10:00-11:00 New York: 15:00Z in winter, 14:00Z from March 14; the 9th moved
    # to Wednesday 14:00 (RECURRENCE-ID), the 16th removed (EXDATE); COUNT=5.
    assert busy("weekly_dst.ics") == [
        ("2027-03-02T15:00", "2027-03-02T16:00"),
        ("2027-03-10T19:00", "2027-03-10T20:00"),
        ("2027-03-23T14:00", "2027-03-23T15:00"),
        ("2027-03-30T14:00", "2027-03-30T15:00"),
    ]


def test_an_all_day_event_is_the_providers_whole_local_day() -> None:
    assert busy("all_day.ics") == [("2027-03-05T05:00", "2027-03-06T05:00")]


def test_a_floating_time_is_the_providers_wall_time() -> None:
    assert busy("floating.ics") == [("2027-03-04T14:00", "2027-03-04T14:30")]


def test_an_event_in_another_zone_keeps_its_instant() -> None:
    assert busy("other_zone.ics") == [("2027-03-04T17:00", "2027-03-04T18:00")]


def test_x_wr_timezone_is_the_zone_of_a_googles_floating_times() -> None:
    assert busy("x_wr_timezone.ics") == [("2027-03-04T11:00", "2027-03-04T12:00")]


def test_count_and_until_end_their_rules() -> None:
    assert busy("count_and_until.ics") == [
        ("2027-03-05T16:00", "2027-03-05T17:00"),
        ("2027-03-08T08:00", "2027-03-08T08:30"),
        ("2027-03-09T08:00", "2027-03-09T08:30"),
        ("2027-03-10T08:00", "2027-03-10T08:30"),
        ("2027-03-12T16:00", "2027-03-12T17:00"),
        ("2027-03-19T16:00", "2027-03-19T17:00"),
    ]


def test_free_cancelled_and_own_events_are_not_busy_and_tentative_is_the_calendars_choice() -> None:
    counted = [
        ("2027-03-08T20:00", "2027-03-08T21:00"),
        ("2027-03-10T20:00", "2027-03-10T21:00"),
    ]
    assert busy("free_and_cancelled.ics") == [*counted, ("2027-03-11T15:00", "2027-03-11T16:00")]
    assert busy("free_and_cancelled.ics", tentative_busy=False) == counted


def test_the_window_keeps_whole_events_that_reach_into_it() -> None:
    late = datetime(2027, 3, 2, 15, 30, tzinfo=UTC)  # inside the first meeting
    assert busy("weekly_dst.ics", start_at=late)[0] == ("2027-03-02T15:00", "2027-03-02T16:00")


@pytest.mark.parametrize(
    "data",
    [
        (FILES / "malformed.ics").read_bytes(),
        b"<html><body>Sign in to see this calendar</body></html>",
        b"",
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Nora\r\nEND:VCARD\r\n",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20270304T0900\r\nRRULE:FREQ=SOMETIMES\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n",
    ],
)
def test_what_is_not_a_calendar_is_unreadable(data: bytes) -> None:
    with pytest.raises(expand.Unreadable):
        expand.busy_time(data, zone=NEW_YORK, start_at=START_AT, end_at=END_AT, tentative_busy=True)


# Plain events (one occurrence, nothing else refers to them) are read without the libraries
# (expand.plain); the libraries read the whole of each of these documents to the same busy
# time.
ODD_EVENTS = [
    "DTSTART:20270305T100000Z\r\nDTEND:20270305T090000Z\r\n",  # an end before the start
    "DTSTART;VALUE=DATE:20270305\r\n",  # all day, no end: one day
    "DTSTART;VALUE=DATE:20270305\r\nDTEND:20270305T090000Z\r\n",  # a date and a time
    "DTSTART;TZID=Nowhere/Atlantis:20270305T100000\r\nDTEND;TZID=Nowhere/Atlantis:20270305T11"
    "0000\r\n",  # an unknown zone: floating
    'DTSTART;TZID="America/Chicago":20270305T100000\r\nDTEND;TZID=America/Chicago:20270305T1'
    "10000\r\n",  # a quoted parameter
    "DTSTART;TZID=America/Chicago;VALUE=DATE:20270305\r\nDTEND;TZID=America/Chicago;VALUE=DATE:"
    "20270306\r\n",
    "DTSTART:20270305T100000Z\r\nDURATION:PT90M\r\n",
    "DTSTART:20270305T100000\r\nDTEND:20270305T113000\r\nSTATUS:tentative\r\n",
    "DTSTART;VALUE=DATE:20270305\r\nDTEND;VALUE=DATE:20270307\r\nTRANSP:transparent\r\n",
]


def document(*events: str, header: str = "") -> str:
    blocks = [
        f"BEGIN:VEVENT\r\nUID:odd-{k}@example.com\r\n{event}END:VEVENT\r\n"
        for k, event in enumerate(events)
    ]
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{header}{''.join(blocks)}END:VCALENDAR\r\n"


def by_libraries(data: str | bytes, *, tentative_busy: bool = True) -> list[tuple[str, str]]:
    """The busy time the libraries read from the whole document (every line as written)."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    found = [
        one
        for calendar in expand._parsed(text, multiple=True)
        for one in expand._busy_of(calendar, NEW_YORK, START_AT, END_AT, tentative_busy)
    ]
    found.sort(key=lambda one: (one.start_at, one.end_at))
    return [
        (one.start_at.isoformat()[:16], one.end_at.isoformat()[:16])
        for one in expand.scheduling.merge(found)
    ]


def by_split(data: str | bytes, *, tentative_busy: bool = True) -> list[tuple[str, str]]:
    found = expand.busy_time(
        data, zone=NEW_YORK, start_at=START_AT, end_at=END_AT, tentative_busy=tentative_busy
    )
    return [(one.start_at.isoformat()[:16], one.end_at.isoformat()[:16]) for one in found.intervals]


@pytest.mark.parametrize(
    "name", sorted(path.name for path in FILES.glob("*.ics") if "malformed" not in path.name)
)
@pytest.mark.parametrize("tentative_busy", [True, False])
def test_the_fixtures_read_as_the_libraries_read_them_whole(
    name: str, tentative_busy: bool
) -> None:
    data = (FILES / name).read_bytes()
    assert by_split(data, tentative_busy=tentative_busy) == by_libraries(
        data, tentative_busy=tentative_busy
    )


@pytest.mark.parametrize("header", ["", "X-WR-TIMEZONE:Europe/Berlin\r\n"])
def test_odd_events_read_as_the_libraries_read_them(header: str) -> None:
    data = document(*ODD_EVENTS, header=header)
    assert by_split(data) == by_libraries(data)
    read = expand.busy_time(
        data, zone=NEW_YORK, start_at=START_AT, end_at=END_AT, tentative_busy=True
    )
    assert read.events == len(ODD_EVENTS) - 1  # all but the one marked free


def zone_definition(tzid: str, offset: str) -> str:
    return (
        f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        f"TZOFFSETFROM:{offset}\r\nTZOFFSETTO:{offset}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )


def test_a_zone_defined_in_a_later_calendar_of_the_document_reads_as_the_libraries_read_it() -> (
    None
):
    # icalendar parses the whole document before it reads a time that refers to a zone
    # defined later; the zone's name is new to this process (its zone cache keeps every one).
    tzid = f"Custom/Plus5-{uuid.uuid4().hex}"
    times = f"DTSTART;TZID={tzid}:20270305T100000\r\nDTEND;TZID={tzid}:20270305T110000\r\n"
    data = document(times) + f"BEGIN:VCALENDAR\r\n{zone_definition(tzid, '+0500')}END:VCALENDAR\r\n"
    assert by_split(data) == [("2027-03-05T05:00", "2027-03-05T06:00")]
    assert by_libraries(data) == by_split(data)


def test_a_zone_defined_inside_an_event_reads_as_the_libraries_read_it() -> None:
    tzid = f"Custom/Plus5-{uuid.uuid4().hex}"
    times = f"DTSTART;TZID={tzid}:20270305T100000\r\nDTEND;TZID={tzid}:20270305T110000\r\n"
    data = document(
        f"DTSTART:20270306T100000Z\r\nDTEND:20270306T110000Z\r\n{zone_definition(tzid, '+0500')}",
        times,
    )
    assert by_split(data) == by_libraries(data)


def test_an_event_inside_an_event_reads_as_the_libraries_read_it() -> None:
    data = document(
        "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nBEGIN:VEVENT\r\n"
        "UID:inner@example.com\r\nDTSTART:20270306T100000Z\r\nDTEND:20270306T110000Z\r\n"
        "END:VEVENT\r\n"
    )
    assert by_split(data) == by_libraries(data)


# Whitespace the libraries keep (a value, a component's name) or drop (around a parameter):
# each of these reads as they read it.
SPACED_EVENTS = [
    "DTSTART;TZID= Europe/Berlin:20270305T100000\r\nDTEND;TZID= Europe/Berlin:20270305T11"
    "0000\r\n",  # 09:00Z, not floating
    "DTSTART;TZID=Europe/Berlin :20270305T100000\r\nDTEND;TZID=Europe/Berlin:20270305T110000\r\n",
    "DTSTART ;TZID=Europe/Berlin:20270305T100000\r\nDTEND;TZID=Europe/Berlin:20270305T110000\r\n",
    "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nSTATUS:CANCELLED \r\n",  # busy
    "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nTRANSP:TRANSPARENT \r\n",
    "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nSTATUS: CANCELLED\r\n",
]


SPACED_EVENTS += [
    "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nRR ULE:FREQ=DAILY;COUNT=3\r\n",
]


@pytest.mark.parametrize("event", SPACED_EVENTS)
def test_whitespace_reads_as_the_libraries_read_it(event: str) -> None:
    data = document(event)
    assert by_split(data) == by_libraries(data)
    assert by_split(data)


@pytest.mark.parametrize(
    "data",
    [
        # A component the libraries do not know (its name ends with a space): not busy.
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT \r\nUID:spaced@example.com\r\n"
        "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        # Slotwise's own UID only as written: busy.
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:booking-1@slotwise \r\n"
        "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:booking-1@slot\\\\wise\r\n"
        "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    ],
)
def test_a_spaced_component_or_uid_reads_as_the_libraries_read_it(data: str) -> None:
    assert by_split(data) == by_libraries(data)


@pytest.mark.parametrize(
    "data",
    [
        # A line ends with CRLF or LF only, for the parser: U+2028 is in the description.
        document(
            "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\n"
            "DESCRIPTION:a\u2028STATUS:CANCELLED\r\n"
        ),
        # A fold after blank lines.
        document(
            "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nSTATUS:CANCEL\r\n\r\n LED\r\n"
        ),
    ],
)
def test_lines_are_split_and_unfolded_as_the_libraries_do_it(data: str) -> None:
    assert by_split(data) == by_libraries(data)


def test_lines_are_the_parsers_lines() -> None:
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice("\r\n \tA:") for _ in range(rng.randrange(12)))
        assert expand.lines(text) == NEWLINE.split(UFOLD.sub("", text)), repr(text)


def test_a_document_with_carriage_returns_alone_is_unreadable_as_for_the_libraries() -> None:
    data = document("DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\n")
    with pytest.raises(expand.Unreadable):
        by_libraries(data.replace("\r\n", "\r"))
    with pytest.raises(expand.Unreadable):
        by_split(data.replace("\r\n", "\r"))


def test_spaces_around_an_equals_sign_in_a_tzid_read_as_the_libraries_read_them() -> None:
    # The parser drops them: the zone is the one the calendar defines.
    tzid = f"Custom/Plus5={uuid.uuid4().hex}"
    spaced = tzid.replace("=", " = ")
    data = document(
        f"DTSTART;TZID={spaced}:20270305T100000\r\nDTEND;TZID={spaced}:20270305T110000\r\n",
        header=zone_definition(tzid, "+0500"),
    )
    assert by_split(data) == [("2027-03-05T05:00", "2027-03-05T06:00")]
    assert by_libraries(data) == by_split(data)


def test_a_name_written_with_spaces_reads_as_the_libraries_read_it() -> None:
    # The parser drops the spaces in a name: a cancelled event, and a zone it knows.
    tzid = f"Custom/Plus5-{uuid.uuid4().hex}"
    zone = zone_definition(tzid, "+0500").replace("BEGIN:VTIMEZONE", "BEGIN :VTIMEZONE", 1)
    data = document(
        "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nSTA TUS:CANCELLED\r\n",
        f"DTSTART;TZID={tzid}:20270306T100000\r\nDTEND;TZID={tzid}:20270306T110000\r\n",
        header=zone,
    )
    assert by_split(data) == [("2027-03-06T05:00", "2027-03-06T06:00")]
    assert by_libraries(data) == by_split(data)


def test_a_plain_event_long_past_is_not_read() -> None:
    # Its end cannot be read, but it is years before the window: the calendar is readable.
    data = document(
        "DTSTART:20100304T100000Z\r\nDTEND:20100304T1100XXZ\r\n",
        "DTSTART:20270304T100000Z\r\nDTEND:20270304T110000Z\r\n",
    )
    assert by_split(data) == [("2027-03-04T10:00", "2027-03-04T11:00")]
    with pytest.raises(expand.Unreadable):
        by_libraries(data)


def test_a_series_ended_long_before_the_window_is_not_read() -> None:
    # Its rule cannot be expanded, but its UNTIL is years before the window.
    data = document(
        "DTSTART:20100304T100000Z\r\nDTEND:20100304T110000Z\r\n"
        "RRULE:FREQ=SOMETIMES;UNTIL=20120101T000000Z\r\n",
        "DTSTART:20270304T100000Z\r\nDTEND:20270304T110000Z\r\n",
    )
    assert by_split(data) == [("2027-03-04T10:00", "2027-03-04T11:00")]
    with pytest.raises(expand.Unreadable):
        by_libraries(data)


@pytest.mark.parametrize(
    "event",
    [
        # The rule's value starts after the quoted parameter: no UNTIL, every week.
        'DTSTART:20100304T100000Z\r\nDTEND:20100304T110000Z\r\nRRULE;X-A="b:UNTIL=20100401T0'
        '00000Z":FREQ=WEEKLY\r\n',
        # UNTIL before the window, but an occurrence lasting into it.
        "DTSTART;VALUE=DATE:20260220\r\nDTEND;VALUE=DATE:20260305\r\n"
        "RRULE:FREQ=YEARLY;UNTIL=20270221\r\n",
        # A COUNT is not read: the series is expanded.
        "DTSTART:20270201T100000Z\r\nDTEND:20270201T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\n",
    ],
)
def test_a_series_that_may_reach_the_window_is_read(event: str) -> None:
    data = document(event)
    assert by_split(data) == by_libraries(data)
    assert by_split(data)


def test_an_override_moved_into_the_window_keeps_its_ended_series() -> None:
    data = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
        "BEGIN:VEVENT\r\nUID:old@example.com\r\nDTSTART:20270101T100000Z\r\n"
        "DTEND:20270101T110000Z\r\nRRULE:FREQ=DAILY;UNTIL=20270110T100000Z\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:old@example.com\r\nRECURRENCE-ID:20270105T100000Z\r\n"
        "DTSTART:20270305T100000Z\r\nDTEND:20270305T110000Z\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    assert by_split(data) == by_libraries(data) == [("2027-03-05T10:00", "2027-03-05T11:00")]


def mixed_calendar(seed: int) -> str:
    """300 events in every form the split tells apart, from 2020 to 2028 (the window is
    March and April 2027): times in UTC, in a TZID, floating, all-day dates with and
    without an end, DURATION, STATUS and TRANSP, rules with COUNT or UNTIL (before, in and
    after the window), and overrides moving or cancelling an occurrence."""
    header, events = mixed_events(seed)
    blocks = "".join("BEGIN:VEVENT\r\n" + "\r\n".join(one) + "\r\nEND:VEVENT\r\n" for one in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{header}{blocks}END:VCALENDAR\r\n"


def mixed_events(seed: int) -> tuple[str, list[list[str]]]:
    """``mixed_calendar``'s header and events (each its lines)."""
    rng = random.Random(seed)
    header = rng.choice(["", "X-WR-TIMEZONE:Europe/Berlin\r\n"])
    events = []
    for k in range(300):
        day = date(2020, 1, 1) + timedelta(days=rng.randrange(9 * 365))
        if rng.random() < 0.5:  # most near the window, as a real calendar's upcoming events
            day = date(2027, 2, 20) + timedelta(days=rng.randrange(80))
        hour = rng.randrange(24)
        stamp = f"{day:%Y%m%d}T{hour:02d}{rng.choice(['00', '30'])}00"
        end_stamp = (
            f"{day + timedelta(days=rng.choice([0, 0, 0, 1])):%Y%m%d}T{(hour + 1) % 24:02d}0000"
        )
        form = rng.choice(["utc", "tzid", "berlin", "floating", "date", "date-open", "duration"])
        lines = {
            "utc": [f"DTSTART:{stamp}Z", f"DTEND:{end_stamp}Z"],
            "tzid": [
                f"DTSTART;TZID=America/New_York:{stamp}",
                f"DTEND;TZID=America/New_York:{end_stamp}",
            ],
            "berlin": [
                f"DTSTART;TZID=Europe/Berlin:{stamp}",
                f"DTEND;TZID=Europe/Berlin:{end_stamp}",
            ],
            "floating": [f"DTSTART:{stamp}", f"DTEND:{end_stamp}"],
            "date": [
                f"DTSTART;VALUE=DATE:{day:%Y%m%d}",
                f"DTEND;VALUE=DATE:{day + timedelta(days=rng.randrange(1, 4)):%Y%m%d}",
            ],
            "date-open": [f"DTSTART;VALUE=DATE:{day:%Y%m%d}"],
            "duration": [f"DTSTART:{stamp}Z", "DURATION:PT45M"],
        }[form]
        lines += rng.choice(
            [
                [],
                [],
                ["STATUS:TENTATIVE"],
                ["STATUS:CANCELLED"],
                ["TRANSP:TRANSPARENT"],
                ["STATUS:CONFIRMED"],
            ]
        )
        recurring = form in ("utc", "date") and rng.random() < 0.3
        if recurring:
            until = day + timedelta(days=rng.randrange(10, 400))
            lines.append(
                rng.choice(
                    [
                        "RRULE:FREQ=WEEKLY;COUNT=8",
                        f"RRULE:FREQ=WEEKLY;UNTIL={until:%Y%m%d}"
                        + ("T235959Z" if form == "utc" else ""),
                    ]
                )
            )
        uid = f"mixed-{k}@example.com"
        events.append([f"UID:{uid}", *lines])
        if recurring and form == "utc":  # the second occurrence moved a day, or cancelled
            second = f"{day + timedelta(days=7):%Y%m%d}T{hour:02d}"
            moved = f"{day + timedelta(days=8):%Y%m%d}T{hour:02d}"
            minutes = stamp[-4:-2]
            events.append(
                [
                    f"UID:{uid}",
                    f"RECURRENCE-ID:{second}{minutes}00Z",
                    f"DTSTART:{moved}{minutes}00Z",
                    f"DTEND:{moved}{minutes}00Z".replace(f"T{hour:02d}", f"T{(hour + 1) % 24:02d}")
                    if hour < 23
                    else f"DTEND:{moved}5900Z",
                    *rng.choice([[], ["STATUS:CANCELLED"]]),
                ]
            )
    return header, events


@pytest.mark.parametrize("seed", range(6))
def test_a_mixed_calendar_reads_as_the_libraries_read_it_whole(seed: int) -> None:
    data = mixed_calendar(seed)
    for tentative_busy in (True, False):
        assert by_split(data, tentative_busy=tentative_busy) == by_libraries(
            data, tentative_busy=tentative_busy
        )
    assert by_split(data)


MIXED_ZONE = "Custom/Mixed-Plus5"  # always +05:00: the parser's zone cache keeps one per name


def written_oddly(seed: int, *, calendars: int, structural: bool) -> str:
    """``mixed_calendar``'s events written as the libraries may read otherwise than the
    split: spaces around names, parameters and values (and, if ``structural``, in BEGIN
    lines and UIDs), times in a zone the document defines (before or after its events),
    and the events spread over ``calendars`` VCALENDARs."""
    header, events = mixed_events(seed)
    rng = random.Random(-seed)
    blocks = []
    for lines in events:
        if rng.random() < 0.5:
            lines = [line.replace("TZID=Europe/Berlin", f"TZID={MIXED_ZONE}") for line in lines]
        lines = [_spaced(line, rng, structural=structural) for line in lines]
        begin = "BEGIN:VEVENT " if structural and rng.random() < 0.01 else "BEGIN:VEVENT"
        blocks.append(f"{begin}\r\n" + "\r\n".join(lines) + "\r\nEND:VEVENT\r\n")
    zone = zone_definition(MIXED_ZONE, "+0500")
    cuts = sorted(rng.sample(range(1, len(blocks)), calendars - 1))
    parts = [blocks[a:b] for a, b in zip([0, *cuts], [*cuts, len(blocks)], strict=True)]
    parts[rng.randrange(calendars)].insert(rng.choice([0, -1]), zone)
    return "".join(
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{header}{''.join(part)}END:VCALENDAR\r\n"
        for part in parts
    )


def _spaced(line: str, rng: random.Random, *, structural: bool) -> str:
    """The line, one time in ten written with spaces the libraries keep or drop."""
    name = line.split(":", 1)[0].split(";", 1)[0]
    if rng.random() >= 0.1:
        return line
    if name in ("STATUS", "TRANSP"):
        return rng.choice([f"{line} ", line.replace(":", ": ", 1)])
    if name in ("DTSTART", "DTEND") and ";TZID=" in line:
        return rng.choice([line.replace("TZID=", "TZID= "), line.replace(";", " ;", 1)])
    if name == "UID" and structural:
        return f"{line} "
    return line


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("calendars", "structural"), [(1, False), (1, True), (3, False)])
def test_a_calendar_written_oddly_reads_as_the_libraries_read_it_whole(
    seed: int, calendars: int, structural: bool
) -> None:
    data = written_oddly(seed, calendars=calendars, structural=structural)
    for tentative_busy in (True, False):
        assert by_split(data, tentative_busy=tentative_busy) == by_libraries(
            data, tentative_busy=tentative_busy
        )
    assert by_split(data)
