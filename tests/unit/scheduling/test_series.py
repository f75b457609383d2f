"""Recurring series in the core: every occurrence is a single booking's request for its date,
decided by the unchanged ``decide``; wall times hold across DST; the pattern's count and
until; named DST cases in zones with a midnight (America/Santiago) and a 30-minute
(Australia/Lord_Howe) transition."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise.scheduling import (
    MAX_OCCURRENCES,
    BookingPolicy,
    Offering,
    Placement,
    Reason,
    Refusal,
    Request,
    SeriesTooLong,
    ServiceSpec,
    Terms,
    WeeklyRule,
    decide,
    occurrence_requests,
    pattern_of,
    resolve_wall_time,
)

ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # DST moves clocks by 30 minutes
    "America/Santiago",  # transitions at midnight: 00:00 is skipped, 23:00-24:00 repeated
    "America/Havana",  # transitions at midnight (00:00 -> 01:00) too
    "Pacific/Apia",  # skipped 2011-12-30 entirely
]
HALF_HOUR = ServiceSpec(duration=timedelta(minutes=30))
NOW = datetime(2010, 1, 1, tzinfo=UTC)


def terms_in(zone: ZoneInfo, first: date, last: date) -> Terms:
    """A provider open all day every day (on a 30-minute grid), taking bookings any time
    ahead, with terms covering ``first..last``."""
    return Terms(
        provider_id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        version=1,
        zone=zone,
        listed=True,
        accepting_bookings=True,
        requires_confirmation=False,
        verify_guest_email=False,
        policy=BookingPolicy(min_notice=timedelta(0), max_advance=None),
        default=Offering(id=None, name=None, is_active=True, spec=HALF_HOUR),
        services={},
        weekly=tuple(WeeklyRule(day, time(0), time(0)) for day in range(7)),
        overrides=(),
        time_off=(),
        first_date=first,
        last_date=last,
    )


def decided(terms: Terms, start: datetime, every_weeks: int, count: int) -> list[object]:
    pattern = pattern_of(start, terms.zone, every_weeks=every_weeks, count=count)
    asked = occurrence_requests(start, pattern, service_id=None, by=None)
    return [decide(terms, request, now=NOW) for request in asked]


@settings(max_examples=150, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    first=st.dates(min_value=date(2011, 1, 1), max_value=date(2030, 12, 31)),
    half_hours=st.integers(min_value=0, max_value=47),
    every_weeks=st.integers(min_value=1, max_value=4),
    count=st.integers(min_value=1, max_value=MAX_OCCURRENCES),
)
def test_each_occurrence_is_decided_as_a_single_booking_of_its_date(
    zone_name: str, first: date, half_hours: int, every_weeks: int, count: int
) -> None:
    zone = ZoneInfo(zone_name)
    wall = datetime.combine(first, time(half_hours // 2, 30 * (half_hours % 2)))
    terms = terms_in(zone, first, first + timedelta(weeks=every_weeks * count))
    pattern = pattern_of(wall, zone, every_weeks=every_weeks, count=count)
    series = decided(terms, wall, every_weeks, count)
    assert len(series) == count
    recurrences = pattern.recurrences_at(zone)
    for i, outcome in enumerate(series):
        on_date = first + timedelta(weeks=every_weeks * i)
        single = decide(
            terms,
            Request(service_id=None, start_time=datetime.combine(on_date, wall.time())),
            now=NOW,
        )
        assert outcome == single
        if isinstance(outcome, Placement):
            # Placed where the rule puts it (fold 0); its wall time is the series' own
            # unless the zone skipped it (a gap: RFC 5545's resolution, as for one booking).
            assert outcome.start_at == recurrences[i]
            assert outcome.start_at == resolve_wall_time(on_date, wall.time(), zone)
            local = outcome.start_at.astimezone(zone)
            if local.replace(tzinfo=None) != datetime.combine(on_date, wall.time()):
                assert _in_gap(on_date, wall.time(), zone)
        else:
            # Open all day: refused only where the wall time does not exist (a skipped
            # day, or a gap whose resolution is off the half-hour grid).
            assert outcome.reason is Reason.OUTSIDE_AVAILABILITY
            assert _in_gap(on_date, wall.time(), zone)


def _in_gap(on_date: date, wall: time, zone: ZoneInfo) -> bool:
    at = datetime.combine(on_date, wall, zone)
    round_trip = at.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return round_trip != datetime.combine(on_date, wall)


@given(
    first=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    days=st.integers(min_value=0, max_value=400),
    every_weeks=st.integers(min_value=1, max_value=4),
)
def test_until_is_inclusive_and_bounded(first: date, days: int, every_weeks: int) -> None:
    until = first + timedelta(days=days)
    start = datetime.combine(first, time(9))
    try:
        pattern = pattern_of(start, ZoneInfo("Europe/Berlin"), every_weeks=every_weeks, until=until)
    except SeriesTooLong:
        assert days // (7 * every_weeks) + 1 > MAX_OCCURRENCES
        return
    walls = pattern.wall_times()
    assert walls[0] == start
    assert walls[-1].date() <= until < walls[-1].date() + timedelta(weeks=every_weeks)


def test_more_than_52_is_too_long() -> None:
    with pytest.raises(SeriesTooLong):
        pattern_of(datetime(2027, 1, 4, 9), ZoneInfo("UTC"), every_weeks=1, count=53)


def test_an_aware_start_is_read_in_the_zone_and_kept_as_given() -> None:
    zone = ZoneInfo("Europe/Berlin")
    start = datetime(2027, 3, 22, 8, 0, tzinfo=UTC)  # 09:00 CET
    pattern = pattern_of(start, zone, every_weeks=1, count=2)
    assert pattern.first_time == datetime(2027, 3, 22, 9, 0)
    asked = occurrence_requests(start, pattern, service_id=None, by=None)
    assert asked[0].start_time == start
    assert asked[1].start_time == datetime(2027, 3, 29, 9, 0)  # naive: 09:00 CEST


# -- named cases a reader can check by hand ---------------------------------------------------


def starts(terms: Terms, start: datetime, count: int) -> list[str | Reason]:
    return [
        o.reason if isinstance(o, Refusal) else o.start_at.astimezone(terms.zone).isoformat()
        for o in decided(terms, start, 1, count)
        if isinstance(o, Placement | Refusal)
    ]


def test_new_york_0900_stays_0900_across_spring_forward() -> None:
    terms = terms_in(ZoneInfo("America/New_York"), date(2027, 3, 1), date(2027, 4, 1))
    assert starts(terms, datetime(2027, 3, 8, 9), 3) == [
        "2027-03-08T09:00:00-05:00",
        "2027-03-15T09:00:00-04:00",  # DST began on 2027-03-14
        "2027-03-22T09:00:00-04:00",
    ]


def test_santiago_midnight_gap_and_repeated_hour() -> None:
    zone = ZoneInfo("America/Santiago")
    terms = terms_in(zone, date(2027, 3, 20), date(2027, 9, 30))
    # 2027-04-04 00:00 (-03) clocks went back to 2027-04-03 23:00 (-04): 23:30 happens twice
    # on the 3rd; the series takes the first (fold 0), as a single booking does.
    assert starts(terms, datetime(2027, 3, 27, 23, 30), 2) == [
        "2027-03-27T23:30:00-03:00",
        "2027-04-03T23:30:00-03:00",
    ]
    # 2027-09-05 00:00 (-04) does not exist (clocks go to 01:00 -03): resolved with the offset
    # before the gap, 01:00 -03, as for a single booking; the other weeks keep 00:00.
    assert starts(terms, datetime(2027, 8, 29, 0, 0), 3) == [
        "2027-08-29T00:00:00-04:00",
        "2027-09-05T01:00:00-03:00",
        "2027-09-12T00:00:00-03:00",
    ]


def test_lord_howe_half_hour_transition() -> None:
    zone = ZoneInfo("Australia/Lord_Howe")
    terms = terms_in(zone, date(2027, 9, 20), date(2027, 10, 20))
    # 2027-10-03 02:00 (+10:30) became 02:30 (+11): 02:00 does not exist that day; it
    # resolves to 02:30 +11:00, on the half-hour grid, so it is offered and booked.
    assert starts(terms, datetime(2027, 9, 26, 2, 0), 3) == [
        "2027-09-26T02:00:00+10:30",
        "2027-10-03T02:30:00+11:00",
        "2027-10-10T02:00:00+11:00",
    ]
    # 09:00 stays 09:00 whatever the offset.
    assert starts(terms, datetime(2027, 9, 26, 9, 0), 2) == [
        "2027-09-26T09:00:00+10:30",
        "2027-10-03T09:00:00+11:00",
    ]


def test_apia_skipped_day_resolves_as_a_single_booking() -> None:
    zone = ZoneInfo("Pacific/Apia")
    terms = terms_in(zone, date(2011, 12, 1), date(2012, 1, 31))
    # 2011-12-30 did not happen in Samoa: its 10:00 is a wall time in a day-long gap, read
    # with the offset before it (-10:00), which is 2011-12-31 10:00 +14:00, an offered slot.
    # A single booking of "2011-12-30T10:00:00" lands there too; the series does the same.
    single = decide(terms, Request(service_id=None, start_time=datetime(2011, 12, 30, 10)), now=NOW)
    assert isinstance(single, Placement)
    assert starts(terms, datetime(2011, 12, 23, 10), 3) == [
        "2011-12-23T10:00:00-10:00",
        single.start_at.astimezone(zone).isoformat(),
        "2012-01-06T10:00:00+14:00",
    ]
    assert single.start_at.astimezone(zone).isoformat() == "2011-12-31T10:00:00+14:00"
