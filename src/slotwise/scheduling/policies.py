"""When bookings may start, relative to a `now` the caller supplies."""

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from slotwise.scheduling.intervals import clamped_utc, shifted


@dataclass(frozen=True, slots=True)
class BookingPolicy:
    """A slot may start no sooner than `min_notice` and no later than `max_advance` from now.

    Both bounds are inclusive and measured in elapsed time; `max_advance=None` means no horizon.
    """

    min_notice: timedelta = timedelta(0)
    max_advance: timedelta | None = None

    def __post_init__(self) -> None:
        if self.min_notice < timedelta(0):
            raise ValueError("min_notice must not be negative")
        if self.max_advance is not None and self.max_advance < timedelta(0):
            raise ValueError("max_advance must not be negative")


def earliest_start(now: datetime, policy: BookingPolicy) -> datetime:
    """The first instant (UTC) a slot may start at; past the calendar's end, its end."""
    return shifted(clamped_utc(now, "now"), policy.min_notice)


def latest_start(now: datetime, policy: BookingPolicy) -> datetime | None:
    """The last instant (UTC) a slot may start at, or None without a horizon; a horizon past
    the calendar's end is its end."""
    now_at = clamped_utc(now, "now")
    return None if policy.max_advance is None else shifted(now_at, policy.max_advance)


def bookable_range(starts_at: Sequence[datetime], policy: BookingPolicy, now: datetime) -> slice:
    """The part of `starts_at` (sorted UTC instants) that `policy` admits at `now`.

    Slots computed without a clock and cut by this range are the slots computed at `now`,
    so a cached slot list stays valid as the clock moves.
    """
    first = bisect_left(starts_at, earliest_start(now, policy))
    latest_at = latest_start(now, policy)
    last = len(starts_at) if latest_at is None else bisect_right(starts_at, latest_at)
    return slice(first, max(first, last))
