"""A provider's terms: everything a booking is decided against, as one value.

The booking layer reads them from the database (and keeps them per worker); the decision
(`scheduling.decision`) reads nothing else. Adding a rule means adding what it reads here
and what it decides there.
"""

import uuid
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from slotwise.scheduling.intervals import Interval, merge
from slotwise.scheduling.policies import BookingPolicy
from slotwise.scheduling.rules import DateOverride, TimeOff, WeeklyRule, day_extent
from slotwise.scheduling.slots import ServiceSpec, Slot, compute_slots

# Offered slots are remembered per (service, date): the dates a worker sees; a bound anyway.
OFFERED_KEPT = 1024


@dataclass(frozen=True, slots=True)
class Offering:
    """A service (or, with `id` None, the provider's default session) as it is booked."""

    id: uuid.UUID | None
    name: str | None
    is_active: bool
    spec: ServiceSpec
    # A member's share of a team's service: booked through its team only (`Request.for_team`).
    team: bool = False

    @property
    def capacity(self) -> int:
        """Seats of one session: 1 for a one-to-one service."""
        return self.spec.capacity


@dataclass(frozen=True, slots=True)
class Limits:
    """How many bookings the provider takes: per local day, per local week (Monday to
    Sunday), and active future ones per client. None: no limit."""

    per_day: int | None = None
    per_week: int | None = None
    per_client: int | None = None

    def __post_init__(self) -> None:
        for name in ("per_day", "per_week", "per_client"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")


def full_dates(limits: Limits, zone: ZoneInfo, booked_starts_at: Iterable[datetime]) -> set[date]:
    """The local dates on which the provider takes no more bookings: those whose day, or
    whose week (Monday to Sunday), already holds as many bookings as its limit allows.
    ``booked_starts_at``: the starts of the provider's bookings in the weeks concerned."""
    if limits.per_day is None and limits.per_week is None:
        return set()
    by_date = Counter(start_at.astimezone(zone).date() for start_at in booked_starts_at)
    by_week: Counter[date] = Counter()
    for on_date, count in by_date.items():
        by_week[_monday(on_date)] += count
    full: set[date] = set()
    if limits.per_day is not None:
        full.update(on_date for on_date, count in by_date.items() if count >= limits.per_day)
    if limits.per_week is not None:
        for monday, count in by_week.items():
            if count >= limits.per_week:
                full.update(_week(monday))
    return full


def _monday(on_date: date) -> date:
    return date.fromordinal(on_date.toordinal() - on_date.weekday())  # 0001-01-01 is one


def _week(monday: date) -> list[date]:
    last = min(monday.toordinal() + 6, date.max.toordinal())
    return [date.fromordinal(ordinal) for ordinal in range(monday.toordinal(), last + 1)]


@dataclass(frozen=True, slots=True)
class Terms:
    """The provider's terms as of its rules `version`.

    `overrides` and `time_off` are those touching `first_date..last_date` (local dates);
    a date outside needs its own (`covering`).
    """

    provider_id: uuid.UUID
    owner_id: uuid.UUID  # the provider's own account, which cannot book it
    version: int
    zone: ZoneInfo
    listed: bool
    accepting_bookings: bool
    requires_confirmation: bool
    verify_guest_email: bool
    policy: BookingPolicy
    default: Offering
    services: Mapping[uuid.UUID, Offering]
    weekly: tuple[WeeklyRule, ...]
    overrides: tuple[DateOverride, ...]
    time_off: tuple[TimeOff, ...]
    first_date: date
    last_date: date
    limits: Limits = Limits()
    # Busy time from the provider's own calendars, sorted and merged (instants): what a
    # booking must not overlap, as it must not overlap an appointment's blocked time.
    busy: tuple[Interval, ...] = ()
    _offered: dict[tuple[uuid.UUID | None, date], frozenset[Slot]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def offering(self, service_id: uuid.UUID | None) -> Offering | None:
        return self.default if service_id is None else self.services.get(service_id)

    def covers(self, on_date: date) -> bool:
        return self.first_date <= on_date <= self.last_date

    def covering(
        self,
        on_date: date,
        overrides: tuple[DateOverride, ...],
        time_off: tuple[TimeOff, ...],
        busy: tuple[Interval, ...] = (),
    ) -> "Terms":
        """These terms for one more date, with that date's overrides, time off and busy
        time."""
        return replace(
            self,
            overrides=self.overrides + overrides,
            time_off=self.time_off + time_off,
            busy=tuple(merge([*self.busy, *busy])) if busy else self.busy,
            first_date=min(self.first_date, on_date),
            last_date=max(self.last_date, on_date),
            _offered={},
        )

    def offered(self, offering: Offering, on_date: date) -> frozenset[Slot]:
        """The slots the engine offers on a local date, busy time and policy aside
        (computed once per service and date)."""
        if not self.covers(on_date):
            raise ValueError(f"{on_date} is outside {self.first_date}..{self.last_date}")
        key = (offering.id, on_date)
        found = self._offered.get(key)
        if found is None:
            found = frozenset(
                compute_slots(
                    zone=self.zone,
                    start_date=on_date,
                    end_date=on_date,
                    weekly=self.weekly,
                    overrides=self.overrides,
                    time_off=self.time_off,
                    service=offering.spec,
                    now=None,
                )
            )
            if len(self._offered) < OFFERED_KEPT:
                self._offered[key] = found
        return found

    def local_date(self, moment_at: datetime) -> date:
        return moment_at.astimezone(self.zone).date()

    def busy_during(self, span: Interval) -> bool:
        """Whether the provider's calendars have busy time overlapping ``span`` (touching is
        not overlapping)."""
        busy = self.busy
        # The last busy interval starting before the span ends is the only one that can
        # reach into it: they are merged, so the ones before it end before it starts.
        index = bisect_left(busy, span.end_at, key=lambda interval: interval.start_at) - 1
        return index >= 0 and busy[index].overlaps(span)

    def day_of(self, moment_at: datetime) -> Interval:
        """The provider's local day holding an instant, as instants."""
        return day_extent(self.local_date(moment_at), self.zone)

    def week_of(self, moment_at: datetime) -> Interval:
        """The provider's local week (Monday to Sunday) holding an instant, as instants."""
        days = _week(_monday(self.local_date(moment_at)))
        first = day_extent(days[0], self.zone)
        last = day_extent(days[-1], self.zone)
        return Interval(first.start_at, last.end_at)
