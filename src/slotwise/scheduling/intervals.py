"""Half-open intervals of UTC instants and the two set operations the engine needs."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter

# The instants a datetime can hold, in UTC: the core's whole timeline.
MIN_AT = datetime.min.replace(tzinfo=UTC)
MAX_AT = datetime.max.replace(tzinfo=UTC)


class OutOfRange(ValueError):
    """An instant a datetime cannot hold in UTC: a reading within a day of 0001-01-01 or
    9999-12-31 whose offset carries it past the calendar's end."""


def as_utc(moment_at: datetime, name: str) -> datetime:
    """`moment_at` in UTC; ValueError if it is naive, OutOfRange if UTC cannot hold it."""
    if moment_at.tzinfo is UTC:  # the common case (what the database hands over): as is
        return moment_at
    if moment_at.tzinfo is None or moment_at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment_at!r}")
    try:
        return moment_at.astimezone(UTC)
    except OverflowError:
        raise OutOfRange(f"{name} {moment_at.isoformat()} is outside UTC's calendar") from None


def clamped_utc(moment_at: datetime, name: str) -> datetime:
    """`as_utc`, with an instant past either end of the calendar clamped to that end (an
    offset is under a day, so only a reading in year 1 or 9999 can be past it)."""
    try:
        return as_utc(moment_at, name)
    except OutOfRange:
        return MIN_AT if moment_at.year == 1 else MAX_AT


def shifted(moment_at: datetime, delta: timedelta) -> datetime:
    """`moment_at + delta`, clamped to the timeline."""
    try:
        return moment_at + delta
    except OverflowError:
        return MAX_AT if delta > timedelta(0) else MIN_AT


@dataclass(frozen=True, slots=True)
class Interval:
    """The instants `start_at <= t < end_at`, stored in UTC. May be empty, never reversed.

    Storing UTC matters beyond tidiness: Python compares and subtracts two datetimes that
    share a ZoneInfo by their wall clocks, which is wrong across a DST fold.
    """

    start_at: datetime
    end_at: datetime

    def __post_init__(self) -> None:
        start_at, end_at = self.start_at, self.end_at
        if start_at.tzinfo is not UTC or end_at.tzinfo is not UTC:  # else as they are
            start_at = as_utc(start_at, "start_at")
            end_at = as_utc(end_at, "end_at")
            object.__setattr__(self, "start_at", start_at)
            object.__setattr__(self, "end_at", end_at)
        if end_at < start_at:
            raise ValueError(f"end_at {end_at} is before start_at {start_at}")

    @property
    def duration(self) -> timedelta:
        return self.end_at - self.start_at

    def overlaps(self, other: "Interval") -> bool:
        """True if the two share an instant: touching intervals and empty ones do not."""
        return max(self.start_at, other.start_at) < min(self.end_at, other.end_at)

    def contains(self, other: "Interval") -> bool:
        return self.start_at <= other.start_at and other.end_at <= self.end_at


def merged_bounds(intervals: Iterable[Interval]) -> tuple[list[datetime], list[datetime]]:
    """Starts and ends of the union: sorted, non-empty, neither overlapping nor touching."""
    starts: list[datetime] = []
    ends: list[datetime] = []
    for interval in sorted(intervals, key=attrgetter("start_at")):
        if interval.start_at == interval.end_at:
            continue
        if ends and interval.start_at <= ends[-1]:
            ends[-1] = max(ends[-1], interval.end_at)
        else:
            starts.append(interval.start_at)
            ends.append(interval.end_at)
    return starts, ends


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union as sorted intervals, overlapping and adjacent ones joined, empty ones dropped."""
    starts, ends = merged_bounds(intervals)
    return [Interval(start_at, end_at) for start_at, end_at in zip(starts, ends, strict=True)]


def subtract(base: Iterable[Interval], cut: Iterable[Interval]) -> list[Interval]:
    """The time in `base` and not in `cut`, in the same canonical form as `merge`."""
    cut_starts, cut_ends = merged_bounds(cut)
    result: list[Interval] = []
    index = 0
    for interval in merge(base):
        while index < len(cut_ends) and cut_ends[index] <= interval.start_at:
            index += 1
        start_at = interval.start_at
        probe = index
        while probe < len(cut_starts) and cut_starts[probe] < interval.end_at:
            if start_at < cut_starts[probe]:
                result.append(Interval(start_at, cut_starts[probe]))
            start_at = max(start_at, cut_ends[probe])
            probe += 1
        if start_at < interval.end_at:
            result.append(Interval(start_at, interval.end_at))
    return result
