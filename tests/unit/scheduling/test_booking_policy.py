"""Booking policy: notice and horizon relative to an explicit `now`."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from slotwise.scheduling import BookingPolicy, bookable_range, earliest_start, latest_start

NOW_AT = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)


def test_defaults_allow_anything_from_now_on() -> None:
    policy = BookingPolicy()
    assert earliest_start(NOW_AT, policy) == NOW_AT
    assert latest_start(NOW_AT, policy) is None


def test_notice_and_horizon() -> None:
    policy = BookingPolicy(min_notice=timedelta(hours=2), max_advance=timedelta(days=30))
    assert earliest_start(NOW_AT, policy) == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert latest_start(NOW_AT, policy) == datetime(2026, 4, 1, 8, 15, tzinfo=UTC)


def test_results_are_utc_whatever_the_zone_of_now() -> None:
    now_at = NOW_AT.astimezone(ZoneInfo("Asia/Kolkata"))
    policy = BookingPolicy(max_advance=timedelta(days=1))
    assert earliest_start(now_at, policy).tzinfo is UTC
    assert latest_start(now_at, policy) == NOW_AT + timedelta(days=1)


@pytest.mark.parametrize("function", [earliest_start, latest_start])
def test_naive_now_is_rejected(function: Callable[[datetime, BookingPolicy], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        function(datetime(2026, 3, 2, 8), BookingPolicy())


@pytest.mark.parametrize(
    "fields",
    [{"min_notice": timedelta(minutes=-1)}, {"max_advance": timedelta(seconds=-1)}],
)
def test_negative_durations_are_rejected(fields: dict[str, timedelta]) -> None:
    with pytest.raises(ValueError, match="negative"):
        BookingPolicy(**fields)


def test_durations_are_elapsed_time_even_when_now_is_local() -> None:
    # 12:00 EST the day before New York springs forward; 24 hours later it is 13:00 EDT.
    now_at = datetime(2026, 3, 7, 12, tzinfo=ZoneInfo("America/New_York"))
    policy = BookingPolicy(min_notice=timedelta(hours=24), max_advance=timedelta(hours=24))
    assert earliest_start(now_at, policy) == datetime(2026, 3, 8, 17, tzinfo=UTC)
    assert latest_start(now_at, policy) == datetime(2026, 3, 8, 17, tzinfo=UTC)


def test_bookable_range_cuts_sorted_starts_at_notice_and_horizon() -> None:
    starts = [NOW_AT + timedelta(hours=hours) for hours in range(6)]
    policy = BookingPolicy(min_notice=timedelta(hours=1), max_advance=timedelta(hours=3))
    assert bookable_range(starts, policy, NOW_AT) == slice(1, 4)  # both bounds inclusive
    assert bookable_range(starts, BookingPolicy(), NOW_AT) == slice(0, 6)
    assert bookable_range(starts, BookingPolicy(), NOW_AT + timedelta(days=1)) == slice(6, 6)
    assert bookable_range([], policy, NOW_AT) == slice(0, 0)
