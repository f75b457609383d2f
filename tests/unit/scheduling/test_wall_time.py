"""Local wall times to UTC instants (RFC 5545 §3.3.5), day extents and availability."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from slotwise.scheduling import (
    DateOverride,
    Interval,
    OverrideKind,
    TimeRange,
    WeeklyRule,
    availability_for,
    day_extent,
    resolve_wall_time,
)

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
APIA = ZoneInfo("Pacific/Apia")
SANTIAGO = ZoneInfo("America/Santiago")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class TestResolveWallTime:
    @pytest.mark.parametrize(
        ("zone", "on_date", "wall_time", "expected_at"),
        [
            # ordinary times
            (NEW_YORK, date(2026, 1, 15), time(9), utc(2026, 1, 15, 14)),
            (NEW_YORK, date(2026, 7, 15), time(9), utc(2026, 7, 15, 13)),
            (ZoneInfo("Asia/Kolkata"), date(2026, 6, 15), time(9), utc(2026, 6, 15, 3, 30)),
            # spring-forward gap: the offset in force before the gap is used
            (NEW_YORK, date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7, 30)),
            (NEW_YORK, date(2026, 3, 8), time(2), utc(2026, 3, 8, 7)),
            (LONDON, date(2026, 3, 29), time(1, 30), utc(2026, 3, 29, 1, 30)),
            (LORD_HOWE, date(2026, 10, 4), time(2, 15), utc(2026, 10, 3, 15, 45)),
            # fall-back fold: the first occurrence is used
            (NEW_YORK, date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),
            (LONDON, date(2026, 10, 25), time(1, 30), utc(2026, 10, 25, 0, 30)),
            (LORD_HOWE, date(2026, 4, 5), time(1, 45), utc(2026, 4, 4, 14, 45)),
            # a whole day that does not exist is read with the offset before it (-10)
            (APIA, date(2011, 12, 30), time(9), utc(2011, 12, 30, 19)),
        ],
    )
    def test_examples(
        self, zone: ZoneInfo, on_date: date, wall_time: time, expected_at: datetime
    ) -> None:
        resolved_at = resolve_wall_time(on_date, wall_time, zone)
        assert resolved_at == expected_at
        assert resolved_at.tzinfo is UTC

    def test_fold_attribute_of_the_input_is_ignored(self) -> None:
        second_occurrence = time(1, 30, fold=1)
        assert resolve_wall_time(date(2026, 11, 1), second_occurrence, NEW_YORK) == utc(
            2026, 11, 1, 5, 30
        )

    def test_rejects_aware_wall_time(self) -> None:
        with pytest.raises(ValueError, match="wall"):
            resolve_wall_time(date(2026, 1, 1), time(9, tzinfo=UTC), NEW_YORK)


class TestDayExtent:
    @pytest.mark.parametrize(
        ("zone", "on_date", "start_at", "hours"),
        [
            (NEW_YORK, date(2026, 1, 15), utc(2026, 1, 15, 5), 24),
            (NEW_YORK, date(2026, 3, 8), utc(2026, 3, 8, 5), 23),
            (NEW_YORK, date(2026, 11, 1), utc(2026, 11, 1, 4), 25),
            (LORD_HOWE, date(2026, 10, 4), utc(2026, 10, 3, 13, 30), 23.5),
            (LORD_HOWE, date(2026, 4, 5), utc(2026, 4, 4, 13), 24.5),
            (APIA, date(2011, 12, 29), utc(2011, 12, 29, 10), 24),
            (APIA, date(2011, 12, 30), utc(2011, 12, 30, 10), 0),
            (APIA, date(2011, 12, 31), utc(2011, 12, 30, 10), 24),
            # Chile springs forward at midnight: 00:00 does not exist, the day starts at the
            # transition (00:00 -04 = 04:00Z) and lasts 23 hours.
            (SANTIAGO, date(2026, 9, 6), utc(2026, 9, 6, 4), 23),
            # ...and falls back at midnight to 23:00, so the 4th of April has 23:00-24:00 twice.
            (SANTIAGO, date(2026, 4, 4), utc(2026, 4, 4, 3), 25),
        ],
    )
    def test_examples(
        self, zone: ZoneInfo, on_date: date, start_at: datetime, hours: float
    ) -> None:
        extent = day_extent(on_date, zone)
        assert extent == Interval(start_at, start_at + timedelta(hours=hours))


EVERY_DAY_NINE_TO_FIVE = [WeeklyRule(day, time(9), time(17)) for day in range(7)]


class TestAvailabilityFor:
    def test_ordinary_day(self) -> None:
        assert availability_for(date(2026, 1, 15), NEW_YORK, EVERY_DAY_NINE_TO_FIVE, [], []) == [
            Interval(utc(2026, 1, 15, 14), utc(2026, 1, 15, 22))
        ]

    def test_gap_inside_a_range_shortens_it(self) -> None:
        weekly = [WeeklyRule(6, time(1), time(4))]
        assert availability_for(date(2026, 3, 8), NEW_YORK, weekly, [], []) == [
            Interval(utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))
        ]

    def test_range_entirely_inside_the_gap_uses_the_offset_before_it(self) -> None:
        # 02:10 and 02:50 both read as EST: 07:10Z-07:50Z, a real 40 minutes (03:10-03:50 EDT)
        weekly = [WeeklyRule(6, time(2, 10), time(2, 50))]
        assert availability_for(date(2026, 3, 8), NEW_YORK, weekly, [], []) == [
            Interval(utc(2026, 3, 8, 7, 10), utc(2026, 3, 8, 7, 50))
        ]

    def test_range_from_the_gap_to_just_after_it_is_dropped(self) -> None:
        # 02:30 reads as 07:30Z, 03:15 EDT is 07:15Z: the range ends before it starts
        weekly = [WeeklyRule(6, time(2, 30), time(3, 15))]
        assert availability_for(date(2026, 3, 8), NEW_YORK, weekly, [], []) == []

    def test_ranges_made_to_overlap_by_the_gap_are_merged(self) -> None:
        # 01:00-02:45 -> 06:00Z-07:45Z and 03:00-04:00 -> 07:00Z-08:00Z
        weekly = [WeeklyRule(6, time(1), time(2, 45)), WeeklyRule(6, time(3), time(4))]
        assert availability_for(date(2026, 3, 8), NEW_YORK, weekly, [], []) == [
            Interval(utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))
        ]

    def test_fold_lengthens_a_range(self) -> None:
        weekly = [WeeklyRule(6, time(0), time(3))]
        assert availability_for(date(2026, 11, 1), NEW_YORK, weekly, [], []) == [
            Interval(utc(2026, 11, 1, 4), utc(2026, 11, 1, 8))
        ]

    def test_nonexistent_day_has_no_availability(self) -> None:
        overrides = [
            DateOverride(date(2011, 12, 30), OverrideKind.ADD, (TimeRange(time(0), time(23)),))
        ]
        assert (
            availability_for(date(2011, 12, 30), APIA, EVERY_DAY_NINE_TO_FIVE, overrides, []) == []
        )

    def test_days_around_a_nonexistent_day(self) -> None:
        assert availability_for(date(2011, 12, 29), APIA, EVERY_DAY_NINE_TO_FIVE, [], []) == [
            Interval(utc(2011, 12, 29, 19), utc(2011, 12, 30, 3))
        ]
        assert availability_for(date(2011, 12, 31), APIA, EVERY_DAY_NINE_TO_FIVE, [], []) == [
            Interval(utc(2011, 12, 30, 19), utc(2011, 12, 31, 3))
        ]

    def test_nothing_spills_into_the_next_day_when_midnight_is_in_a_gap(self) -> None:
        # Santiago 2026-09-06 starts at 04:00Z; a range on the 5th ending at 23:59 local ends
        # at 2026-09-06 03:59Z, inside the 5th's extent.
        weekly = [WeeklyRule(5, time(23), time(23, 59))]
        assert availability_for(date(2026, 9, 5), SANTIAGO, weekly, [], []) == [
            Interval(utc(2026, 9, 6, 3), utc(2026, 9, 6, 3, 59))
        ]
        assert day_extent(date(2026, 9, 5), SANTIAGO).end_at == utc(2026, 9, 6, 4)
