"""A range may end at midnight (00:00 as an end time: the end of the day), so evening and
whole-day hours can be entered; it never spills into the next date."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from slotwise.scheduling import (
    DateOverride,
    OverrideKind,
    ServiceSpec,
    TimeRange,
    WeeklyRule,
    availability_for,
    compute_slots,
    local_ranges_for,
)

NEW_YORK = ZoneInfo("America/New_York")
MIDNIGHT = time(0)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_an_evening_range_runs_to_the_end_of_the_day() -> None:
    rule = WeeklyRule(day_of_week=6, start_time=time(18), end_time=MIDNIGHT)  # Sunday
    # 2026-11-01, the day New York falls back: 18:00 EST is 23:00Z, midnight is 05:00Z.
    assert [
        (i.start_at, i.end_at)
        for i in availability_for(date(2026, 11, 1), NEW_YORK, [rule], [], [])
    ] == [(at(2026, 11, 1, 23), at(2026, 11, 2, 5))]


def test_midnight_to_midnight_is_the_whole_day_however_long() -> None:
    rule = WeeklyRule(day_of_week=6, start_time=MIDNIGHT, end_time=MIDNIGHT)
    spring = availability_for(date(2026, 3, 8), NEW_YORK, [rule], [], [])  # 23 hours
    autumn = availability_for(date(2026, 11, 1), NEW_YORK, [rule], [], [])  # 25 hours
    assert [i.end_at - i.start_at for i in spring] == [timedelta(hours=23)]
    assert [i.end_at - i.start_at for i in autumn] == [timedelta(hours=25)]


def test_the_last_slots_of_the_day_end_at_midnight() -> None:
    rule = WeeklyRule(day_of_week=2, start_time=time(22), end_time=MIDNIGHT)
    slots = compute_slots(
        zone=NEW_YORK,
        start_date=date(2027, 3, 3),
        end_date=date(2027, 3, 4),
        weekly=[rule],
        service=ServiceSpec(duration=timedelta(hours=1)),
        now=None,
    )
    local = [(s.start_at.astimezone(NEW_YORK), s.end_at.astimezone(NEW_YORK)) for s in slots]
    assert [(a.strftime("%d %H:%M"), b.strftime("%d %H:%M")) for a, b in local] == [
        ("03 22:00", "03 23:00"),
        ("03 23:00", "04 00:00"),
    ]


def test_ranges_ending_at_midnight_merge_as_the_latest() -> None:
    overrides = [
        DateOverride(
            date(2027, 3, 3),
            OverrideKind.REPLACE,
            (
                TimeRange(time(9), time(12)),
                TimeRange(time(12), MIDNIGHT),
                TimeRange(time(20), time(22)),
            ),
        )
    ]
    assert local_ranges_for(date(2027, 3, 3), [], overrides, []) == [TimeRange(time(9), MIDNIGHT)]


@pytest.mark.parametrize(
    ("start", "end"), [(time(9), time(9)), (time(10), time(9)), (time(23, 59), time(23, 58))]
)
def test_other_ends_must_still_come_after_the_start(start: time, end: time) -> None:
    with pytest.raises(ValueError, match="before end_time"):
        TimeRange(start, end)
    with pytest.raises(ValueError, match="before end_time"):
        WeeklyRule(day_of_week=0, start_time=start, end_time=end)
