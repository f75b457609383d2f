"""Fixture calendars read as busy time, each with the exact intervals it must give (a
provider in New York; the US changes to summer time on 2027-03-14)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

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
