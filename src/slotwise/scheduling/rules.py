"""Availability rules in local wall time, and their translation to UTC instants.

Wall times are resolved as RFC 5545 §3.3.5 prescribes, which is what zoneinfo does with
`fold=0`: a time skipped by a spring-forward gap is read with the UTC offset in force before
the gap (New York 02:30 on 2026-03-08 is 07:30Z, shown as 03:30 EDT), and a time repeated by
a fall-back fold is its first occurrence.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from slotwise.scheduling.intervals import MAX_AT, MIN_AT, Interval, OutOfRange, merge

ONE_DAY = timedelta(days=1)
MIDNIGHT = time(0)  # as an end time: the midnight that ends the day (24:00)


def since_midnight(wall_time: time) -> timedelta:
    """How far into its day a wall time (a start) is."""
    return timedelta(
        hours=wall_time.hour,
        minutes=wall_time.minute,
        seconds=wall_time.second,
        microseconds=wall_time.microsecond,
    )


def end_since_midnight(end_time: time) -> timedelta:
    """How far into its day an end time is: 00:00 as an end is the day's last midnight."""
    return ONE_DAY if end_time == MIDNIGHT else since_midnight(end_time)


def _check_wall_times(start_time: time, end_time: time) -> None:
    if start_time.tzinfo is not None or end_time.tzinfo is not None:
        raise ValueError("wall times must be naive: the zone belongs to the provider")
    if not since_midnight(start_time) < end_since_midnight(end_time):
        raise ValueError(f"start_time {start_time} must be before end_time {end_time}")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A wall-clock range within one local day: `start_time <= t < end_time`; an end of
    00:00 is the midnight that ends the day (00:00-00:00 is the whole day)."""

    start_time: time
    end_time: time

    def __post_init__(self) -> None:
        _check_wall_times(self.start_time, self.end_time)


@dataclass(frozen=True, slots=True)
class WeeklyRule:
    """Available every `day_of_week` (0 = Monday) from `start_time` to `end_time`.

    The optional validity dates are inclusive.
    """

    day_of_week: int
    start_time: time
    end_time: time
    valid_from_date: date | None = None
    valid_until_date: date | None = None

    def __post_init__(self) -> None:
        if self.day_of_week not in range(7):
            raise ValueError(f"day_of_week must be 0 (Monday) to 6, got {self.day_of_week}")
        _check_wall_times(self.start_time, self.end_time)
        if (
            self.valid_from_date is not None
            and self.valid_until_date is not None
            and self.valid_until_date < self.valid_from_date
        ):
            raise ValueError("valid_from_date must not be after valid_until_date")


class OverrideKind(StrEnum):
    REPLACE = "replace"  # these ranges instead of the weekly rules
    ADD = "add"  # these ranges as well
    UNAVAILABLE = "unavailable"  # nothing at all that day


@dataclass(frozen=True, slots=True)
class DateOverride:
    on_date: date
    kind: OverrideKind
    ranges: tuple[TimeRange, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranges", tuple(self.ranges))
        if self.kind is OverrideKind.UNAVAILABLE and self.ranges:
            raise ValueError("an UNAVAILABLE override takes no ranges")


@dataclass(frozen=True, slots=True)
class TimeOff:
    """Whole local days off, both ends inclusive."""

    start_date: date
    end_date: date

    def __post_init__(self) -> None:
        if self.end_date < self.start_date:
            raise ValueError("start_date must not be after end_date")


def _applies(rule: WeeklyRule, on_date: date, weekday: int) -> bool:
    return (
        rule.day_of_week == weekday
        and (rule.valid_from_date is None or rule.valid_from_date <= on_date)
        and (rule.valid_until_date is None or on_date <= rule.valid_until_date)
    )


def _merge_ranges(ranges: list[TimeRange]) -> list[TimeRange]:
    if len(ranges) < 2:  # the common day: one range, nothing to merge
        return ranges
    merged: list[TimeRange] = []
    ordered = sorted(ranges, key=lambda item: (item.start_time, end_since_midnight(item.end_time)))
    for time_range in ordered:
        if merged and since_midnight(time_range.start_time) <= end_since_midnight(
            merged[-1].end_time
        ):
            if end_since_midnight(time_range.end_time) > end_since_midnight(merged[-1].end_time):
                merged[-1] = TimeRange(merged[-1].start_time, time_range.end_time)
        else:
            merged.append(time_range)
    return merged


def local_ranges_for(
    on_date: date,
    weekly: Sequence[WeeklyRule],
    overrides: Sequence[DateOverride],
    time_off: Sequence[TimeOff],
) -> list[TimeRange]:
    """The wall-clock ranges available on `on_date`, merged and sorted.

    Time off or an UNAVAILABLE override empties the day. Otherwise REPLACE overrides (all of
    them, united) stand in for the weekly rules, and ADD overrides are united with the result.
    """
    if time_off and any(off.start_date <= on_date <= off.end_date for off in time_off):
        return []
    todays = [override for override in overrides if override.on_date == on_date]
    if any(override.kind is OverrideKind.UNAVAILABLE for override in todays):
        return []
    replacing = [override for override in todays if override.kind is OverrideKind.REPLACE]
    weekday = on_date.weekday()
    ranges = (
        [time_range for override in replacing for time_range in override.ranges]
        if replacing
        else [
            TimeRange(rule.start_time, rule.end_time)
            for rule in weekly
            if _applies(rule, on_date, weekday)
        ]
    )
    ranges += [
        time_range
        for override in todays
        if override.kind is OverrideKind.ADD
        for time_range in override.ranges
    ]
    return _merge_ranges(ranges)


def resolve_wall_time(on_date: date, wall_time: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of `wall_time` on `on_date` in `zone`, per RFC 5545 (see module doc).

    OutOfRange if UTC cannot hold it (within a day of the calendar's ends, in some zones).
    """
    if wall_time.tzinfo is not None:
        raise ValueError("wall_time must be naive: the zone is given separately")
    try:
        return datetime.combine(on_date, wall_time.replace(fold=0), zone).astimezone(UTC)
    except OverflowError:
        raise OutOfRange(f"{on_date} {wall_time} in {zone} is outside UTC's calendar") from None


def _resolve_clamped(on_date: date, wall_time: time, zone: ZoneInfo, *, next_day: bool) -> datetime:
    """`resolve_wall_time` on `on_date` (or the day after), clamped to the timeline: the
    midnight after 9999-12-31 is past it, for one."""
    if next_day:
        if on_date == date.max:
            return MAX_AT
        on_date += ONE_DAY
    try:
        return datetime.combine(on_date, wall_time, zone).astimezone(UTC)
    except OverflowError:
        return MIN_AT if on_date.year == 1 else MAX_AT


def day_extent(on_date: date, zone: ZoneInfo) -> Interval:
    """The instants belonging to local `on_date`: from its midnight to the next one.

    Consecutive days tile time exactly. A day the zone skipped entirely (Pacific/Apia,
    2011-12-30) is empty, because both midnights resolve to the same instant. At the
    calendar's ends the day is clipped to the instants UTC can hold (it may be empty).
    """
    start_at = _resolve_clamped(on_date, MIDNIGHT, zone, next_day=False)
    end_at = _resolve_clamped(on_date, MIDNIGHT, zone, next_day=True)
    return Interval(start_at, max(start_at, end_at))


def availability_for(
    on_date: date,
    zone: ZoneInfo,
    weekly: Sequence[WeeklyRule],
    overrides: Sequence[DateOverride],
    time_off: Sequence[TimeOff],
) -> list[Interval]:
    """The UTC intervals available on local `on_date`: sorted, merged, inside its day_extent.

    A range whose ends resolve out of order (it starts in a gap and ends just after it) is
    dropped; clipping to the day keeps a skipped day empty and stops a range read with the
    pre-gap offset from spilling into the next date.
    """
    extent = day_extent(on_date, zone)
    available: list[Interval] = []
    for time_range in local_ranges_for(on_date, weekly, overrides, time_off):
        start_time = time_range.start_time.replace(fold=0)
        start_at = max(_resolve_clamped(on_date, start_time, zone, next_day=False), extent.start_at)
        if time_range.end_time == MIDNIGHT:
            end_at = extent.end_at
        else:
            end_time = time_range.end_time.replace(fold=0)
            end_at = min(_resolve_clamped(on_date, end_time, zone, next_day=False), extent.end_at)
        if start_at < end_at:
            available.append(Interval(start_at, end_at))
    # Ranges apart in wall time can meet or cross as instants (one read across a gap).
    return merge(available) if len(available) > 1 else available
