"""The scheduling core: pure functions on plain dataclasses and zoneinfo zones.

Standard library only. Nothing here reads the clock or the environment: `now` is an argument.
Instants (`*_at`) are timezone-aware UTC datetimes, dates (`*_date`) are local calendar dates
in the provider's zone, and wall times (`*_time`) are naive local clock readings.
"""

from slotwise.scheduling.decision import (
    Clash,
    Kind,
    Limit,
    Placement,
    Proposal,
    Reason,
    Refusal,
    Request,
    Waiting,
    arrange,
    clash,
    decide,
    place,
    read_instant,
    requested_date,
    settle,
)
from slotwise.scheduling.intervals import MAX_AT, MIN_AT, Interval, OutOfRange, merge, subtract
from slotwise.scheduling.policies import (
    BookingPolicy,
    bookable_range,
    earliest_start,
    latest_start,
)
from slotwise.scheduling.rules import (
    DateOverride,
    OverrideKind,
    TimeOff,
    TimeRange,
    WeeklyRule,
    availability_for,
    day_extent,
    end_since_midnight,
    local_ranges_for,
    resolve_wall_time,
    since_midnight,
)
from slotwise.scheduling.slots import ServiceSpec, Slot, computable_dates, compute_slots
from slotwise.scheduling.terms import Limits, Offering, Terms, full_dates

__all__ = [
    "MAX_AT",
    "MIN_AT",
    "BookingPolicy",
    "Clash",
    "DateOverride",
    "Interval",
    "Kind",
    "Limit",
    "Limits",
    "Offering",
    "OutOfRange",
    "OverrideKind",
    "Placement",
    "Proposal",
    "Reason",
    "Refusal",
    "Request",
    "ServiceSpec",
    "Slot",
    "Terms",
    "TimeOff",
    "TimeRange",
    "Waiting",
    "WeeklyRule",
    "arrange",
    "availability_for",
    "bookable_range",
    "clash",
    "computable_dates",
    "compute_slots",
    "day_extent",
    "decide",
    "earliest_start",
    "end_since_midnight",
    "full_dates",
    "latest_start",
    "local_ranges_for",
    "merge",
    "place",
    "read_instant",
    "requested_date",
    "resolve_wall_time",
    "settle",
    "since_midnight",
    "subtract",
]
