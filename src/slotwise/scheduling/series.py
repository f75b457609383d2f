"""Recurring series: the occurrences of a weekly pattern, each one a single booking's request.

A series is a start and a rule: every ``every_weeks`` weeks (1..4) at the same wall-clock time
in the provider's zone, ``count`` times or until a local date (inclusive), at most
``MAX_OCCURRENCES``. Occurrence 0 is the start as given; occurrence *i* is the naive wall
time ``first + i * every_weeks`` weeks (naive arithmetic keeps 09:00 at 09:00), handed to
``decide`` exactly as a single booking's naive time is: a time in a DST gap or fold resolves
as RFC 5545 says (``rules.resolve_wall_time``), a day the zone skipped refuses, and every rule
of the decision (notice, horizon, availability) applies to each occurrence, not only the first.

``recurrence_at`` is the instant the rule gives an occurrence (its wall time, fold 0): what a
calendar expanding the rule finds, and what a moved occurrence keeps as its RECURRENCE-ID.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from slotwise.scheduling.decision import Kind, Request
from slotwise.scheduling.rules import resolve_wall_time

MAX_OCCURRENCES = 52
MAX_EVERY_WEEKS = 4


class SeriesTooLong(ValueError):
    """More occurrences than a series may have."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """A series' rule: its first wall time (naive, in the provider's zone), its interval in
    weeks, and how many occurrences it has."""

    first_time: datetime
    every_weeks: int
    count: int

    def __post_init__(self) -> None:
        if self.first_time.tzinfo is not None:
            raise ValueError("first_time is a wall time: naive, the zone is given separately")
        if not 1 <= self.every_weeks <= MAX_EVERY_WEEKS:
            raise ValueError(f"every_weeks must be 1..{MAX_EVERY_WEEKS}")
        if not 1 <= self.count <= MAX_OCCURRENCES:
            raise ValueError(f"count must be 1..{MAX_OCCURRENCES}")

    @property
    def step(self) -> timedelta:
        return timedelta(weeks=self.every_weeks)

    def wall_times(self) -> list[datetime]:
        """Each occurrence's wall time, as the rule gives it."""
        return [self.first_time + i * self.step for i in range(self.count)]

    def recurrences_at(self, zone: ZoneInfo) -> list[datetime]:
        """Each occurrence's instant as the rule gives it (fold 0, RFC 5545)."""
        return [resolve_wall_time(wall.date(), wall.time(), zone) for wall in self.wall_times()]


def wall_time_of(start: datetime, zone: ZoneInfo) -> datetime:
    """A start as the provider's wall time: a naive one is one already; an aware one is read
    in the zone."""
    if start.tzinfo is None:
        return start
    return start.astimezone(zone).replace(tzinfo=None)


def pattern_of(
    start: datetime,
    zone: ZoneInfo,
    *,
    every_weeks: int,
    count: int | None = None,
    until: date | None = None,
) -> Pattern:
    """The rule of a series starting at ``start`` (naive: a wall time in ``zone``), by
    ``count`` or by the local date ``until`` (inclusive; the start itself is always the
    first occurrence). SeriesTooLong past ``MAX_OCCURRENCES``."""
    if (count is None) == (until is None):
        raise ValueError("a series has a count or an until date, not both")
    first = wall_time_of(start, zone)
    if count is None:
        assert until is not None
        days = (until - first.date()).days
        count = max(1, days // (7 * every_weeks) + 1) if days >= 0 else 1
    if count > MAX_OCCURRENCES:
        raise SeriesTooLong(f"at most {MAX_OCCURRENCES} occurrences")
    return Pattern(first_time=first, every_weeks=every_weeks, count=count)


def occurrence_requests(
    start: datetime,
    pattern: Pattern,
    *,
    service_id: uuid.UUID | None,
    by: uuid.UUID | None,
) -> list[Request]:
    """The booking request of each occurrence: the start as given, then the rule's naive
    wall times, each decided by ``decide`` as a single booking would be."""
    times: list[datetime] = [start, *pattern.wall_times()[1:]]
    return [Request(service_id=service_id, start_time=at, by=by, kind=Kind.BOOKING) for at in times]
