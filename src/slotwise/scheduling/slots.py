"""Bookable slots: availability on a grid, minus busy time, within the booking policy."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from slotwise.scheduling.intervals import MAX_AT, MIN_AT, Interval, merged_bounds
from slotwise.scheduling.policies import BookingPolicy, earliest_start, latest_start
from slotwise.scheduling.rules import (
    ONE_DAY,
    DateOverride,
    TimeOff,
    WeeklyRule,
    availability_for,
)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What is booked: its length, the free time it needs around it, and the grid step.

    `interval=None` steps by the duration, giving back-to-back slots. `capacity`: the seats
    of one session (1: one client a slot; more: a group session, `scheduling.seats`).
    """

    duration: timedelta
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    interval: timedelta | None = None
    capacity: int = 1

    def __post_init__(self) -> None:
        if self.duration <= timedelta(0):
            raise ValueError("duration must be positive")
        if self.buffer_before < timedelta(0) or self.buffer_after < timedelta(0):
            raise ValueError("buffer_before and buffer_after must not be negative")
        if self.interval is not None and self.interval <= timedelta(0):
            raise ValueError("interval must be positive")
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")


@dataclass(frozen=True, slots=True)
class Slot:
    """A bookable `[start_at, end_at)` in UTC; buffers are not part of it."""

    start_at: datetime
    end_at: datetime


def _grid_point_from(anchor_at: datetime, step: timedelta, target_at: datetime) -> datetime:
    """The first of `anchor_at`, `anchor_at + step`, ... that is not before `target_at`."""
    if target_at <= anchor_at:
        return anchor_at
    return anchor_at - ((anchor_at - target_at) // step) * step


def computable_dates(service: ServiceSpec) -> tuple[date, date] | None:
    """The local dates whose slots can be computed without leaving the timeline, or None.

    A date's day reaches a day either side of its UTC midnight (zone offsets are under a
    day) and up to the next midnight; a slot's arithmetic adds the buffers, the duration and
    one grid step. Dates closer than that to 0001-01-01 or 9999-12-31 have no slots.
    """
    try:
        reach = 2 * ONE_DAY + service.duration + service.buffer_before + service.buffer_after
        reach += service.interval or service.duration
        first_date = (MIN_AT + reach).date() + ONE_DAY
        last_date = (MAX_AT - reach).date()
    except OverflowError:  # a service (with its buffers) longer than the calendar
        return None
    return (first_date, last_date) if first_date <= last_date else None


def open_hours(
    *,
    zone: ZoneInfo,
    start_date: date,
    end_date: date,
    weekly: Sequence[WeeklyRule],
    overrides: Sequence[DateOverride] = (),
    time_off: Sequence[TimeOff] = (),
    service: ServiceSpec,
) -> list[Interval]:
    """The available instants of local dates `start_date..end_date` (inclusive) that slots
    of `service` can be computed on (`computable_dates`): each date's `availability_for`,
    date after date, so sorted; intervals of consecutive dates may touch but are kept
    apart, each being its own grid's anchor (`slots_within`)."""
    if end_date < start_date:
        raise ValueError(f"start_date {start_date} is after end_date {end_date}")
    computable = computable_dates(service)
    if computable is None:
        return []
    start_date = max(start_date, computable[0])
    end_date = min(end_date, computable[1])
    overrides = [item for item in overrides if start_date <= item.on_date <= end_date]
    time_off = [
        item for item in time_off if item.start_date <= end_date and start_date <= item.end_date
    ]
    opened: list[Interval] = []
    on_date = start_date
    while on_date <= end_date:
        opened += availability_for(on_date, zone, weekly, overrides, time_off)
        on_date += ONE_DAY
    return opened


def busy_reach(opened: Sequence[Interval], service: ServiceSpec) -> Interval | None:
    """The instants a slot in `opened` (as `open_hours` gives) can take with its buffers,
    or None: nothing open. Busy time outside them cannot change `slots_within(opened)`, so
    a listing needs to read only the busy time within."""
    if not opened:
        return None
    return Interval(
        opened[0].start_at - service.buffer_before, opened[-1].end_at + service.buffer_after
    )


def compute_slots(
    *,
    zone: ZoneInfo,
    start_date: date,
    end_date: date,
    weekly: Sequence[WeeklyRule],
    overrides: Sequence[DateOverride] = (),
    time_off: Sequence[TimeOff] = (),
    busy: Sequence[Interval] = (),
    service: ServiceSpec,
    policy: BookingPolicy = BookingPolicy(),  # frozen, so safe to share
    now: datetime | None,
) -> list[Slot]:
    """The bookable slots on local dates `start_date..end_date` (inclusive), sorted by start:
    `slots_within` the dates' `open_hours`.

    Dates within a few days of the calendar's ends (`computable_dates`) have no slots, and a
    notice or horizon past its end is its end: nothing here overflows.
    """
    opened = open_hours(
        zone=zone,
        start_date=start_date,
        end_date=end_date,
        weekly=weekly,
        overrides=overrides,
        time_off=time_off,
        service=service,
    )
    return slots_within(opened, busy=busy, service=service, policy=policy, now=now)


def slots_within(
    opened: Sequence[Interval],
    *,
    busy: Sequence[Interval] = (),
    service: ServiceSpec,
    policy: BookingPolicy = BookingPolicy(),  # frozen, so safe to share
    now: datetime | None,
) -> list[Slot]:
    """The bookable slots in `opened` (sorted intervals, as `open_hours` gives), by start.

    In each interval candidates start at its start and step by `service.interval` in
    elapsed time, so a slot lasts exactly `service.duration` even across a DST change, and
    must fit inside the interval. A candidate is dropped if
    `[start - buffer_before, end + buffer_after)` overlaps a `busy` interval (busy time is
    expected to be widened by its own buffers already; touching is fine), or if it starts
    before `earliest_start` or after `latest_start`. With `now=None` the policy is not
    applied: `bookable_range` applies it later (what a cache of slots does).

    Busy time is merged once and swept with one forward pointer, and a conflict jumps straight
    to the first grid point clear of it: O(busy log busy + intervals + slots), whatever the
    grid.
    """
    earliest_at = None if now is None else earliest_start(now, policy)
    latest_at = None if now is None else latest_start(now, policy)
    busy_starts, busy_ends = merged_bounds(busy)
    busy_count = len(busy_ends)
    duration = service.duration
    before = service.buffer_before
    after = service.buffer_after
    step = service.interval or duration

    slots: list[Slot] = []
    busy_index = 0  # the first busy interval that may still overlap a candidate
    for available in opened:
        anchor_at = available.start_at
        last_start_at = available.end_at - duration
        if latest_at is not None and latest_at < last_start_at:
            last_start_at = latest_at
        start_at = anchor_at
        if earliest_at is not None:
            if earliest_at > last_start_at:
                continue
            start_at = _grid_point_from(anchor_at, step, earliest_at)
        while start_at <= last_start_at:
            while busy_index < busy_count and busy_ends[busy_index] <= start_at - before:
                busy_index += 1
            if busy_index < busy_count and busy_starts[busy_index] < start_at + duration + after:
                # every candidate before busy end + buffer_before overlaps this busy time
                if busy_ends[busy_index] > last_start_at:
                    break  # so does every one left (and the busy time may end at MAX_AT)
                start_at = _grid_point_from(anchor_at, step, busy_ends[busy_index] + before)
                continue
            slots.append(Slot(start_at, start_at + duration))
            start_at += step
    return slots
