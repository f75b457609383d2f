"""Half-open UTC intervals: examples, then properties checked against a minute grid."""

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise.scheduling import Interval, merge, subtract

BASE_AT = datetime(2026, 1, 5, tzinfo=UTC)


def at(hour: float) -> datetime:
    """An instant `hour` hours after 2026-01-05 00:00Z (fractions allowed)."""
    return BASE_AT + timedelta(hours=hour)


def iv(start: float, end: float) -> Interval:
    return Interval(at(start), at(end))


class TestInterval:
    def test_rejects_end_before_start(self) -> None:
        with pytest.raises(ValueError, match="before"):
            iv(10, 9)

    def test_allows_empty_interval(self) -> None:
        assert iv(9, 9).duration == timedelta(0)

    @pytest.mark.parametrize(
        ("start_at", "end_at"),
        [
            (datetime(2026, 1, 5, 9), at(10)),
            (at(9), datetime(2026, 1, 5, 10)),
        ],
    )
    def test_rejects_naive_datetimes(self, start_at: datetime, end_at: datetime) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            Interval(start_at, end_at)

    def test_normalises_to_utc(self) -> None:
        zone = ZoneInfo("Europe/Paris")
        interval = Interval(datetime(2026, 1, 5, 10, tzinfo=zone), at(12))
        assert interval.start_at == at(9)
        assert interval.start_at.tzinfo is UTC

    def test_normalises_an_end_in_another_zone_too(self) -> None:
        zone = ZoneInfo("Europe/Paris")
        interval = Interval(at(9), datetime(2026, 1, 5, 13, tzinfo=zone))
        assert interval.end_at == at(12)
        assert interval.end_at.tzinfo is UTC

    def test_equal_instants_in_other_offsets_are_equal_intervals(self) -> None:
        plus_two = timezone(timedelta(hours=2))
        shifted = Interval(datetime(2026, 1, 5, 11, tzinfo=plus_two), at(10))
        assert shifted == iv(9, 10)
        assert hash(shifted) == hash(iv(9, 10))

    def test_duration(self) -> None:
        assert iv(9, 10.5).duration == timedelta(minutes=90)

    @pytest.mark.parametrize(
        ("a", "b", "expected"),
        [
            (iv(9, 10), iv(9.5, 11), True),
            (iv(9, 10), iv(10, 11), False),  # touching is not overlapping
            (iv(10, 11), iv(9, 10), False),
            (iv(9, 12), iv(10, 11), True),
            (iv(9, 10), iv(11, 12), False),
            (iv(9, 12), iv(10, 10), False),  # an empty interval overlaps nothing
        ],
    )
    def test_overlaps(self, a: Interval, b: Interval, expected: bool) -> None:
        assert a.overlaps(b) is expected
        assert b.overlaps(a) is expected

    @pytest.mark.parametrize(
        ("outer", "inner", "expected"),
        [
            (iv(9, 12), iv(10, 11), True),
            (iv(9, 12), iv(9, 12), True),
            (iv(9, 12), iv(8, 10), False),
            (iv(9, 12), iv(11, 13), False),
            (iv(10, 11), iv(9, 12), False),
        ],
    )
    def test_contains(self, outer: Interval, inner: Interval, expected: bool) -> None:
        assert outer.contains(inner) is expected


class TestMerge:
    def test_empty(self) -> None:
        assert merge([]) == []

    def test_sorts_and_merges_overlapping_and_adjacent(self) -> None:
        result = merge([iv(13, 14), iv(9, 10), iv(9.5, 11), iv(11, 12), iv(15, 16)])
        assert result == [iv(9, 12), iv(13, 14), iv(15, 16)]

    def test_drops_empty_intervals(self) -> None:
        assert merge([iv(9, 9), iv(10, 11), iv(11, 11)]) == [iv(10, 11)]

    def test_accepts_any_iterable(self) -> None:
        assert merge(iter([iv(9, 10), iv(8, 9)])) == [iv(8, 10)]


class TestSubtract:
    def test_cut_in_the_middle(self) -> None:
        assert subtract([iv(9, 17)], [iv(12, 13)]) == [iv(9, 12), iv(13, 17)]

    def test_cut_over_the_edges(self) -> None:
        assert subtract([iv(9, 17)], [iv(8, 10), iv(16, 18)]) == [iv(10, 16)]

    def test_cut_spanning_several_bases(self) -> None:
        result = subtract([iv(9, 12), iv(13, 17), iv(18, 19)], [iv(11, 14)])
        assert result == [iv(9, 11), iv(14, 17), iv(18, 19)]

    def test_touching_cut_removes_nothing(self) -> None:
        assert subtract([iv(9, 12)], [iv(12, 13), iv(8, 9)]) == [iv(9, 12)]

    def test_cut_everything(self) -> None:
        assert subtract([iv(9, 12)], [iv(9, 12)]) == []

    def test_unsorted_overlapping_inputs(self) -> None:
        result = subtract([iv(13, 15), iv(9, 11), iv(10, 12)], [iv(14, 20), iv(10, 10.5)])
        assert result == [iv(9, 10), iv(10.5, 12), iv(13, 14)]


# --- properties: an interval list is compared with the set of grid minutes it covers ---

GRID_MINUTES = 48


def to_minutes(intervals: list[Interval]) -> set[int]:
    covered: set[int] = set()
    for interval in intervals:
        first = (interval.start_at - BASE_AT) // timedelta(minutes=1)
        last = (interval.end_at - BASE_AT) // timedelta(minutes=1)
        covered.update(range(first, last))
    return covered


@st.composite
def grid_intervals(draw: st.DrawFn) -> Interval:
    start = draw(st.integers(0, GRID_MINUTES))
    end = draw(st.integers(start, GRID_MINUTES))
    return Interval(BASE_AT + timedelta(minutes=start), BASE_AT + timedelta(minutes=end))


interval_lists = st.lists(grid_intervals(), max_size=8)


def assert_canonical(intervals: list[Interval]) -> None:
    """Sorted, non-empty, and neither overlapping nor touching its neighbour."""
    assert all(interval.duration > timedelta(0) for interval in intervals)
    for earlier, later in pairwise(intervals):
        assert earlier.end_at < later.start_at


@settings(max_examples=200, deadline=None)
@given(interval_lists)
def test_merge_covers_the_same_time_canonically(intervals: list[Interval]) -> None:
    merged = merge(intervals)
    assert to_minutes(merged) == to_minutes(intervals)
    assert_canonical(merged)


@settings(max_examples=200, deadline=None)
@given(interval_lists, interval_lists)
def test_subtract_is_set_difference(base: list[Interval], cut: list[Interval]) -> None:
    result = subtract(base, cut)
    assert to_minutes(result) == to_minutes(base) - to_minutes(cut)
    assert_canonical(result)


@settings(max_examples=200, deadline=None)
@given(grid_intervals(), grid_intervals())
def test_overlaps_means_a_shared_minute(a: Interval, b: Interval) -> None:
    assert a.overlaps(b) is bool(to_minutes([a]) & to_minutes([b]))
