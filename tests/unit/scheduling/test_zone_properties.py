"""Property tests over many time zones and dates (2000-2037), DST transition days favoured.

The slot tests compare `compute_slots` with a brute-force reference written here: it walks
every candidate on the grid, checks every busy interval, and records why each rejected
candidate was rejected. The fast engine must return exactly the accepted candidates.
"""

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from slotwise.scheduling import (
    BookingPolicy,
    DateOverride,
    Interval,
    OverrideKind,
    ServiceSpec,
    TimeOff,
    TimeRange,
    WeeklyRule,
    availability_for,
    bookable_range,
    busy_reach,
    compute_slots,
    day_extent,
    end_since_midnight,
    local_ranges_for,
    open_hours,
    resolve_wall_time,
    slots_within,
)

INTERESTING_ZONE_KEYS = [
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",  # -03:30
    "America/Santiago",  # transitions at midnight
    "America/Sao_Paulo",  # transitions at midnight until 2019
    "America/Havana",  # falls back 01:00 -> 00:00
    "America/Asuncion",
    "America/Caracas",  # -04:30 from 2007 to 2016
    "America/Guayaquil",  # no DST
    "America/Nuuk",
    "Europe/London",
    "Europe/Dublin",  # negative DST in the tz database
    "Europe/Berlin",
    "Europe/Moscow",  # permanent changes in 2011 and 2014
    "Europe/Chisinau",
    "Africa/Casablanca",  # DST suspended for Ramadan
    "Africa/Cairo",
    "Asia/Beirut",  # transitions at midnight
    "Asia/Gaza",
    "Asia/Tehran",  # +03:30, DST until 2022
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Asia/Pyongyang",  # half-hour changes in 2015 and 2018
    "Asia/Tokyo",
    "Antarctica/Troll",  # two-hour DST shift
    "Australia/Lord_Howe",  # half-hour DST shift
    "Australia/Sydney",
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Auckland",
    "Pacific/Apia",  # skipped 2011-12-30
    "Pacific/Fakaofo",  # skipped 2011-12-30
    "Pacific/Kiritimati",  # +14:00
    "Pacific/Pago_Pago",  # -11:00
]
ONE_DAY = timedelta(days=1)
T = TypeVar("T")
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

zones = st.one_of(st.sampled_from(INTERESTING_ZONE_KEYS).map(ZoneInfo), st.timezones())


@cache
def transition_dates(zone_key: str, year: int) -> tuple[date, ...]:
    """Local dates in `year` whose UTC offset changes between their start and the next's."""
    zone = ZoneInfo(zone_key)
    found = []
    on_date = date(year, 1, 1)
    while on_date.year == year:
        next_date = on_date + ONE_DAY
        if (
            datetime.combine(on_date, time(), zone).utcoffset()
            != datetime.combine(next_date, time(), zone).utcoffset()
        ):
            found.append(on_date)
        on_date = next_date
    return tuple(found)


@st.composite
def zone_and_date(draw: st.DrawFn) -> tuple[ZoneInfo, date]:
    zone = draw(zones)
    if zone.key in ("Pacific/Apia", "Pacific/Fakaofo") and draw(st.booleans()):
        return zone, date(2011, 12, 30) + draw(st.integers(-1, 1)) * ONE_DAY
    year = draw(st.integers(2000, 2037))
    transitions = transition_dates(zone.key, year)
    near_a_transition = draw(st.booleans())
    if transitions and near_a_transition:
        return zone, draw(st.sampled_from(transitions)) + draw(st.integers(-1, 1)) * ONE_DAY
    return zone, draw(st.dates(date(year, 1, 1), date(year, 12, 31)))


def offset_at(moment_at: datetime, zone: ZoneInfo) -> timedelta | None:
    return moment_at.astimezone(zone).utcoffset()


@cache
def transition_walls(zone_key: str, on_date: date) -> tuple[datetime, ...]:
    """Local clock readings just before and just after each transition near `on_date`."""
    zone = ZoneInfo(zone_key)
    walls = []
    low_at = datetime.combine(on_date, time(), UTC) - timedelta(hours=15)
    for hour in range(40):
        start_at = low_at + timedelta(hours=hour)
        end_at = start_at + timedelta(hours=1)
        if offset_at(start_at, zone) == offset_at(end_at, zone):
            continue
        while end_at - start_at > timedelta(seconds=1):  # the first second of the new offset
            middle_at = start_at + (end_at - start_at) / 2
            if offset_at(middle_at, zone) == offset_at(start_at, zone):
                start_at = middle_at
            else:
                end_at = middle_at
        for offset in (offset_at(start_at, zone), offset_at(end_at, zone)):
            assert offset is not None
            walls.append((end_at + offset).replace(tzinfo=None))
    return tuple(walls)


@st.composite
def zone_date_and_wall_time(draw: st.DrawFn) -> tuple[ZoneInfo, date, time]:
    """Wall times are often within 90 minutes of a transition, to land in gaps and folds."""
    zone, on_date = draw(zone_and_date())
    walls = transition_walls(zone.key, on_date)
    near_a_transition = draw(st.booleans())
    if walls and near_a_transition:
        naive = draw(st.sampled_from(walls)) + draw(minutes(-90, 90))
        return zone, naive.date(), naive.time()
    return zone, on_date, draw(st.times())


def wall_time(minute_of_day: int) -> time:
    """Minutes into the day as a wall time; 24:00 is 00:00 (as an end: midnight)."""
    return time(minute_of_day // 60 % 24, minute_of_day % 60)


@st.composite
def time_ranges(draw: st.DrawFn) -> TimeRange:
    start = draw(st.integers(0, 23).map(lambda hour: hour * 60) | st.integers(0, 24 * 60 - 2))
    length = draw(st.sampled_from([60, 180, 480, 24 * 60]) | st.integers(1, 24 * 60))
    end = min(start + length, 24 * 60)  # often exactly midnight: an evening to its end
    return TimeRange(wall_time(start), wall_time(end))


def dates_near(first_date: date, last_date: date) -> st.SearchStrategy[date]:
    return st.dates(first_date - 2 * ONE_DAY, last_date + 2 * ONE_DAY)


def sometimes(draw: st.DrawFn, strategy: st.SearchStrategy[T]) -> T | None:
    """A value from `strategy` one time in four, else None."""
    return draw(strategy) if draw(st.booleans()) and draw(st.booleans()) else None


@st.composite
def weekly_rules(draw: st.DrawFn, first_date: date, last_date: date) -> WeeklyRule:
    time_range = draw(time_ranges())
    window_days = sorted({first_date.weekday(), last_date.weekday()})
    bounds = sorted(draw(st.lists(dates_near(first_date, last_date), min_size=2, max_size=2)))
    return WeeklyRule(
        day_of_week=draw(st.sampled_from(window_days) | st.integers(0, 6)),
        start_time=time_range.start_time,
        end_time=time_range.end_time,
        valid_from_date=sometimes(draw, st.just(bounds[0])),
        valid_until_date=sometimes(draw, st.just(bounds[1])),
    )


@st.composite
def date_overrides(draw: st.DrawFn, first_date: date, last_date: date) -> DateOverride:
    kind = draw(st.sampled_from(OverrideKind))
    ranges: list[TimeRange] = []
    if kind is not OverrideKind.UNAVAILABLE:
        ranges = draw(st.lists(time_ranges(), max_size=2))
    return DateOverride(draw(st.dates(first_date, last_date)), kind, tuple(ranges))


@st.composite
def time_offs(draw: st.DrawFn, first_date: date, last_date: date) -> TimeOff:
    bounds = sorted(draw(st.lists(dates_near(first_date, last_date), min_size=2, max_size=2)))
    return TimeOff(bounds[0], bounds[1])


def minutes(low: int, high: int) -> st.SearchStrategy[timedelta]:
    return st.integers(low, high).map(lambda count: timedelta(minutes=count))


@st.composite
def rule_sets(draw: st.DrawFn, first_date: date, last_date: date) -> dict[str, Any]:
    return {
        "weekly": draw(st.lists(weekly_rules(first_date, last_date), min_size=1, max_size=8)),
        "overrides": draw(st.lists(date_overrides(first_date, last_date), max_size=3)),
        "time_off": [off for off in [sometimes(draw, time_offs(first_date, last_date))] if off],
    }


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments for compute_slots."""
    zone, start_date = draw(zone_and_date())
    end_date = start_date + draw(st.integers(0, 3)) * ONE_DAY
    anchor_at = resolve_wall_time(start_date, time(), zone)
    span_days = (end_date - start_date).days
    busy_starts = st.lists(
        minutes(-24 * 60, (span_days + 2) * 24 * 60).map(lambda offset: anchor_at + offset),
        max_size=20,
    )
    busy = [Interval(start_at, start_at + draw(minutes(0, 300))) for start_at in draw(busy_starts)]
    service = ServiceSpec(
        duration=draw(
            st.sampled_from([15, 30, 60]).map(lambda m: timedelta(minutes=m)) | minutes(1, 240)
        ),
        buffer_before=draw(st.just(timedelta(0)) | minutes(0, 60)),
        buffer_after=draw(st.just(timedelta(0)) | minutes(0, 60)),
        interval=draw(st.none() | minutes(1, 120)),
    )
    typical_days = st.sampled_from([1, 3, 7, 30]).map(lambda days: days * ONE_DAY)
    policy = BookingPolicy(
        min_notice=draw(st.just(timedelta(0)) | minutes(0, 36 * 60)),
        max_advance=draw(st.none() | typical_days | minutes(0, 7 * 24 * 60)),
    )
    now_at = anchor_at + draw(minutes(-2 * 24 * 60, 24 * 60))
    now_at += timedelta(seconds=draw(st.integers(0, 59)))
    if draw(st.booleans()):
        now_at = now_at.astimezone(zone)
    return {
        "zone": zone,
        "start_date": start_date,
        "end_date": end_date,
        **draw(rule_sets(start_date, end_date)),
        "busy": busy,
        "service": service,
        "policy": policy,
        "now": now_at,
    }


def dates_between(start_date: date, end_date: date) -> list[date]:
    return [start_date + offset * ONE_DAY for offset in range((end_date - start_date).days + 1)]


def reference_verdicts(
    *,
    zone: ZoneInfo,
    start_date: date,
    end_date: date,
    weekly: list[WeeklyRule],
    overrides: list[DateOverride],
    time_off: list[TimeOff],
    busy: list[Interval],
    service: ServiceSpec,
    policy: BookingPolicy,
    now: datetime,
) -> dict[datetime, str | None]:
    """Every grid candidate, mapped to the reason it is rejected (None: accepted)."""
    step = service.interval or service.duration
    earliest_at = now.astimezone(UTC) + policy.min_notice
    latest_at = None if policy.max_advance is None else now.astimezone(UTC) + policy.max_advance
    verdicts: dict[datetime, str | None] = {}
    for on_date in dates_between(start_date, end_date):
        for available in availability_for(on_date, zone, weekly, overrides, time_off):
            start_at = available.start_at
            while start_at + service.duration <= available.end_at:
                widened = Interval(
                    start_at - service.buffer_before,
                    start_at + service.duration + service.buffer_after,
                )
                reason = None
                if start_at < earliest_at:
                    reason = "too little notice"
                elif latest_at is not None and start_at > latest_at:
                    reason = "beyond the horizon"
                elif any(widened.overlaps(busy_interval) for busy_interval in busy):
                    reason = "busy"
                assert start_at not in verdicts, "a candidate must come from one date only"
                verdicts[start_at] = reason
                start_at += step
    return verdicts


@PROPERTY_SETTINGS
@given(scenarios())
def test_slots_match_the_brute_force_reference(scenario: dict[str, Any]) -> None:
    slots = compute_slots(**scenario)
    verdicts = reference_verdicts(**scenario)
    for reason in verdicts.values():
        event(reason or "accepted")
    event(f"{min(len(slots), 10)}{'+' if len(slots) >= 10 else ''} slots")
    accepted = sorted(start_at for start_at, reason in verdicts.items() if reason is None)
    assert [slot.start_at for slot in slots] == accepted
    rejected = set(verdicts) - {slot.start_at for slot in slots}
    assert all(verdicts[start_at] is not None for start_at in rejected)


@PROPERTY_SETTINGS
@given(scenarios())
def test_slot_invariants(scenario: dict[str, Any]) -> None:
    slots = compute_slots(**scenario)
    service: ServiceSpec = scenario["service"]
    policy: BookingPolicy = scenario["policy"]
    now_at = scenario["now"].astimezone(UTC)  # local arithmetic would be wall-clock arithmetic
    zone: ZoneInfo = scenario["zone"]
    availability = {
        on_date: availability_for(
            on_date, zone, scenario["weekly"], scenario["overrides"], scenario["time_off"]
        )
        for on_date in dates_between(scenario["start_date"], scenario["end_date"])
    }
    for slot in slots:
        assert slot.start_at.tzinfo is UTC
        assert slot.end_at.tzinfo is UTC
        assert slot.end_at - slot.start_at == service.duration
        booked = Interval(slot.start_at, slot.end_at)
        [slot_date] = [
            on_date
            for on_date in availability
            if day_extent(on_date, zone).start_at
            <= slot.start_at
            < day_extent(on_date, zone).end_at
        ]
        assert any(available.contains(booked) for available in availability[slot_date])
        widened = Interval(
            slot.start_at - service.buffer_before, slot.end_at + service.buffer_after
        )
        assert not any(widened.overlaps(busy_interval) for busy_interval in scenario["busy"])
        assert slot.start_at >= now_at + policy.min_notice
        if policy.max_advance is not None:
            assert slot.start_at <= now_at + policy.max_advance
    starts = [slot.start_at for slot in slots]
    assert starts == sorted(set(starts))


@PROPERTY_SETTINGS
@given(zone_date_and_wall_time())
def test_resolve_wall_time_follows_rfc_5545(case: tuple[ZoneInfo, date, time]) -> None:
    """Existing wall times map to their first occurrence, missing ones use the earlier offset.

    The oracle only uses UTC -> local conversion: it tries the offsets in force a day before
    and a day after, and keeps the ones whose instant shows `wall` on the local clock.
    """
    zone, on_date, wall = case
    naive = datetime.combine(on_date, wall)
    offset_before = (naive - ONE_DAY).replace(tzinfo=UTC).astimezone(zone).utcoffset()
    offset_after = (naive + ONE_DAY).replace(tzinfo=UTC).astimezone(zone).utcoffset()
    assert offset_before is not None
    assert offset_after is not None
    occurrences = [
        instant_at
        for instant_at in {
            (naive - offset).replace(tzinfo=UTC) for offset in (offset_before, offset_after)
        }
        if instant_at.astimezone(zone).replace(tzinfo=None) == naive
    ]
    expected_at = min(occurrences) if occurrences else (naive - offset_before).replace(tzinfo=UTC)
    event("exists" if len(occurrences) == 1 else "ambiguous" if occurrences else "missing")
    resolved_at = resolve_wall_time(on_date, wall, zone)
    assert resolved_at == expected_at
    assert resolved_at.tzinfo is UTC


@PROPERTY_SETTINGS
@given(zone_and_date())
def test_day_extents_tile_time(zone_date: tuple[ZoneInfo, date]) -> None:
    zone, on_date = zone_date
    extent = day_extent(on_date, zone)
    assert extent.end_at == day_extent(on_date + ONE_DAY, zone).start_at
    if extent.duration:
        assert extent.start_at.astimezone(zone).date() == on_date
        assert timedelta(hours=20) <= extent.duration <= timedelta(hours=28)
    else:
        event("a day that does not exist")


@PROPERTY_SETTINGS
@given(zone_and_date().flatmap(lambda zd: st.tuples(st.just(zd), rule_sets(zd[1], zd[1]))))
def test_availability_stays_in_its_day(
    case: tuple[tuple[ZoneInfo, date], dict[str, Any]],
) -> None:
    (zone, on_date), rules = case
    availability = availability_for(on_date, zone, **rules)
    extent = day_extent(on_date, zone)
    for available in availability:
        assert extent.contains(available)
        assert available.duration > timedelta(0)
    for earlier, later in pairwise(availability):
        assert earlier.end_at < later.start_at
    offset_at_start = extent.start_at.astimezone(zone).utcoffset()
    if extent.duration == ONE_DAY and offset_at_start == extent.end_at.astimezone(zone).utcoffset():
        # no transition that day: plain wall-clock arithmetic with one fixed offset
        assert offset_at_start is not None
        event("fixed offset day")
        expected = [
            Interval(
                datetime.combine(on_date, time_range.start_time, UTC) - offset_at_start,
                # an end of 00:00 is the midnight that ends the day
                datetime.combine(on_date, time(), UTC)
                + end_since_midnight(time_range.end_time)
                - offset_at_start,
            )
            for time_range in local_ranges_for(on_date, **rules)
        ]
        assert availability == expected


@PROPERTY_SETTINGS
@given(scenarios())
def test_the_policy_applied_afterwards_gives_the_same_slots(scenario: dict[str, Any]) -> None:
    """What the slot cache relies on: slots computed without a clock, then cut to the policy
    at `now`, are exactly the slots computed at `now`."""
    clockless = compute_slots(**{**scenario, "now": None})
    cut = bookable_range([slot.start_at for slot in clockless], scenario["policy"], scenario["now"])
    assert clockless[cut] == compute_slots(**scenario)


def hours_of(scenario: dict[str, Any]) -> list[Interval]:
    rules = {name: scenario[name] for name in ("weekly", "overrides", "time_off")}
    window = {name: scenario[name] for name in ("zone", "start_date", "end_date", "service")}
    return open_hours(**window, **rules)


@PROPERTY_SETTINGS
@given(scenarios())
def test_open_hours_are_each_dates_availability_in_turn(scenario: dict[str, Any]) -> None:
    """What a listing computes once and uses twice: for its busy time's reach, and for
    `slots_within`, which is `compute_slots` on them (so the reference test covers it)."""
    zone: ZoneInfo = scenario["zone"]
    rules = {name: scenario[name] for name in ("weekly", "overrides", "time_off")}
    expected = [
        available
        for on_date in dates_between(scenario["start_date"], scenario["end_date"])
        for available in availability_for(on_date, zone, **rules)
    ]
    assert hours_of(scenario) == expected
    policy = {name: scenario[name] for name in ("busy", "service", "policy", "now")}
    assert slots_within(hours_of(scenario), **policy) == compute_slots(**scenario)


@PROPERTY_SETTINGS
@given(scenarios(), st.data())
def test_busy_time_beyond_the_reach_moves_no_slot(
    scenario: dict[str, Any], data: st.DataObject
) -> None:
    """Why a listing reads only the busy time within `busy_reach` of its open hours. Busy
    time is added just before the first open hour and just after the last one, where
    only the buffers can make it matter."""
    opened = hours_of(scenario)
    busy: list[Interval] = list(scenario["busy"])
    if opened:
        before_at = opened[0].start_at - data.draw(minutes(0, 90))
        after_at = opened[-1].end_at + data.draw(minutes(0, 90))
        busy += [
            Interval(before_at - data.draw(minutes(1, 60)), before_at),
            Interval(after_at, after_at + data.draw(minutes(1, 60))),
        ]
    reach = busy_reach(opened, scenario["service"])
    within = [] if reach is None else [interval for interval in busy if interval.overlaps(reach)]
    event(f"{len(busy) - len(within)} busy intervals beyond the reach")
    policy = {name: scenario[name] for name in ("service", "policy", "now")}
    assert slots_within(opened, busy=within, **policy) == slots_within(opened, busy=busy, **policy)
