"""The core is total over the whole calendar, 0001-01-01 to 9999-12-31, in every zone.

What it cannot represent it refuses with `OutOfRange` (a specific instant: a wall time, an
aware datetime as UTC) or clamps (a set of instants: a day, availability, slots, the policy's
bounds), never an OverflowError. Instants are drawn from every zone and from fixed offsets up
to ±23:59, and often within a few days of the calendar's ends.
"""

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise.scheduling import (
    MAX_AT,
    MIN_AT,
    BookingPolicy,
    Interval,
    OutOfRange,
    ServiceSpec,
    Slot,
    WeeklyRule,
    availability_for,
    bookable_range,
    compute_slots,
    day_extent,
    earliest_start,
    latest_start,
    resolve_wall_time,
)

ONE_DAY = timedelta(days=1)
EDGE_SETTINGS = settings(max_examples=300, deadline=None)
# The zones furthest from UTC either way, and every other one.
zones = st.one_of(
    st.sampled_from(["Etc/GMT+12", "Etc/GMT-14", "Pacific/Kiritimati", "UTC"]).map(ZoneInfo),
    st.timezones(),
)
fixed_offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
any_zone: st.SearchStrategy[tzinfo] = st.one_of(zones, fixed_offsets)
# Dates near either end of the calendar half the time, anywhere the rest.
dates = st.one_of(
    st.dates(date.min, date.min + 4 * ONE_DAY),
    st.dates(date.max - 4 * ONE_DAY, date.max),
    st.dates(),
)
naive_datetimes = st.one_of(
    st.datetimes(datetime.min, datetime.min + 4 * ONE_DAY),
    st.datetimes(datetime.max - 4 * ONE_DAY, datetime.max),
    st.datetimes(),
)
aware_datetimes = st.builds(
    lambda naive, zone: naive.replace(tzinfo=zone), naive_datetimes, any_zone
)
deltas = st.one_of(
    st.timedeltas(timedelta(0), timedelta(days=3)), st.timedeltas(timedelta(0), timedelta.max)
)


def instants() -> st.SearchStrategy[datetime]:
    return naive_datetimes.map(lambda naive: naive.replace(tzinfo=UTC))


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    ends = sorted(draw(st.lists(instants(), min_size=2, max_size=2)))
    return Interval(ends[0], ends[1])


@st.composite
def specs(draw: st.DrawFn) -> ServiceSpec:
    return ServiceSpec(
        duration=draw(
            st.timedeltas(timedelta(minutes=5), timedelta(hours=12)) | deltas.filter(bool)
        ),
        buffer_before=draw(deltas),
        buffer_after=draw(deltas),
        interval=draw(st.none() | st.timedeltas(timedelta(minutes=5), timedelta(hours=12))),
    )


def open_all_week() -> list[WeeklyRule]:
    return [WeeklyRule(day, time(0), time(0)) for day in range(7)]


@st.composite
def some_hours(draw: st.DrawFn) -> list[WeeklyRule]:
    """Open all week, or a few ranges on some days (an end of 00:00 is midnight)."""
    if draw(st.booleans()):
        return open_all_week()
    rules = []
    for day, start_hour, hours in draw(
        st.lists(st.tuples(st.integers(0, 6), st.integers(0, 23), st.integers(1, 24)), max_size=4)
    ):
        end_hour = min(start_hour + hours, 24)
        rules.append(WeeklyRule(day, time(start_hour), time(end_hour % 24)))
    return rules


@EDGE_SETTINGS
@given(moment=aware_datetimes)
def test_an_aware_datetime_is_utc_or_refused(moment: datetime) -> None:
    try:
        interval = Interval(moment, moment)
    except OutOfRange:
        assert moment.year in (1, 9999)  # an offset is under a day: only there
        return
    assert interval.start_at.tzinfo is UTC
    assert interval.start_at == moment


@EDGE_SETTINGS
@given(on_date=dates, wall_time=st.times(), zone=zones)
def test_a_wall_time_resolves_or_is_refused(on_date: date, wall_time: time, zone: ZoneInfo) -> None:
    try:
        resolved = resolve_wall_time(on_date, wall_time, zone)
    except OutOfRange:
        assert on_date.year in (1, 9999)
        return
    assert resolved.tzinfo is UTC
    assert MIN_AT <= resolved <= MAX_AT


@EDGE_SETTINGS
@given(on_date=dates, zone=zones)
def test_days_tile_the_calendar_to_its_ends(on_date: date, zone: ZoneInfo) -> None:
    extent = day_extent(on_date, zone)
    assert MIN_AT <= extent.start_at <= extent.end_at <= MAX_AT
    if on_date < date.max:
        assert day_extent(on_date + ONE_DAY, zone).start_at == extent.end_at
    try:
        assert extent.start_at == resolve_wall_time(on_date, time(0), zone)
    except OutOfRange:
        assert extent.start_at in (MIN_AT, MAX_AT)  # clamped


@EDGE_SETTINGS
@given(on_date=dates, zone=zones, ranges=st.lists(st.tuples(st.times(), st.times()), max_size=3))
def test_availability_stays_inside_its_day(
    on_date: date, zone: ZoneInfo, ranges: list[tuple[time, time]]
) -> None:
    weekly = [WeeklyRule(on_date.weekday(), *sorted(pair)) for pair in ranges if pair[0] != pair[1]]
    weekly.append(WeeklyRule(on_date.weekday(), time(23), time(0)))  # to the day's end
    extent = day_extent(on_date, zone)
    found = availability_for(on_date, zone, weekly, (), ())
    for interval in found:
        assert extent.contains(interval)
    for earlier, later in pairwise(found):
        assert earlier.end_at < later.start_at


@EDGE_SETTINGS
@given(now=aware_datetimes, min_notice=deltas, max_advance=st.none() | deltas)
def test_the_policy_bounds_clamp(
    now: datetime, min_notice: timedelta, max_advance: timedelta | None
) -> None:
    policy = BookingPolicy(min_notice=min_notice, max_advance=max_advance)
    earliest_at = earliest_start(now, policy)
    latest_at = latest_start(now, policy)
    assert MIN_AT <= earliest_at <= MAX_AT
    if max_advance is not None and min_notice <= max_advance:
        assert latest_at is not None
        assert earliest_at <= latest_at
    starts = [MIN_AT, MIN_AT + ONE_DAY, MAX_AT - ONE_DAY, MAX_AT]
    admitted = starts[bookable_range(starts, policy, now)]
    assert all(earliest_at <= start_at for start_at in admitted)


@EDGE_SETTINGS
@given(
    zone=zones,
    weekly=some_hours(),
    start_date=dates,
    days=st.integers(0, 3),
    service=specs(),
    busy=st.lists(intervals(), max_size=3),
    now=st.none() | aware_datetimes,
    min_notice=deltas,
    max_advance=st.none() | deltas,
)
def test_slots_anywhere_in_the_calendar(
    zone: ZoneInfo,
    weekly: list[WeeklyRule],
    start_date: date,
    days: int,
    service: ServiceSpec,
    busy: list[Interval],
    now: datetime | None,
    min_notice: timedelta,
    max_advance: timedelta | None,
) -> None:
    end_date = start_date + min(days, (date.max - start_date).days) * ONE_DAY
    policy = BookingPolicy(min_notice=min_notice, max_advance=max_advance)
    slots = compute_slots(
        zone=zone,
        start_date=start_date,
        end_date=end_date,
        weekly=weekly,
        busy=busy,
        service=service,
        policy=policy,
        now=now,
    )
    available = [
        interval
        for offset in range((end_date - start_date).days + 1)
        for interval in availability_for(start_date + offset * ONE_DAY, zone, weekly, (), ())
    ]
    latest_at = None if now is None else latest_start(now, policy)
    for slot in slots:
        assert slot.end_at - slot.start_at == service.duration
        assert any(
            interval.contains(Interval(slot.start_at, slot.end_at)) for interval in available
        )
        assert latest_at is None or slot.start_at <= latest_at
        blocked = Interval(
            slot.start_at - service.buffer_before, slot.end_at + service.buffer_after
        )
        assert not any(blocked.overlaps(interval) for interval in busy)
        if now is not None:
            assert earliest_start(now, policy) <= slot.start_at
    assert [slot.start_at for slot in slots] == sorted({slot.start_at for slot in slots})


@pytest.mark.parametrize("on_date", [date.min, date.max])
@pytest.mark.parametrize("zone", ["UTC", "Etc/GMT+12", "Etc/GMT-14"])
def test_the_calendars_first_and_last_days_have_no_slots(on_date: date, zone: str) -> None:
    """Too close to the ends to compute a slot's buffers and the next midnight: none."""
    slots = compute_slots(
        zone=ZoneInfo(zone),
        start_date=on_date,
        end_date=on_date,
        weekly=open_all_week(),
        service=ServiceSpec(duration=timedelta(hours=1)),
        now=None,
    )
    assert slots == []


def test_slots_on_the_last_day_that_has_them() -> None:
    """9999-12-29 twelve hours behind UTC ends at 9999-12-30T12:00Z: all 24 hours offered."""
    slots = compute_slots(
        zone=ZoneInfo("Etc/GMT+12"),
        start_date=date(9999, 12, 29),
        end_date=date(9999, 12, 29),
        weekly=open_all_week(),
        service=ServiceSpec(duration=timedelta(hours=1), buffer_after=timedelta(hours=4)),
        now=datetime(9999, 12, 28, tzinfo=UTC),
    )
    assert len(slots) == 24
    assert slots[-1] == Slot(
        datetime(9999, 12, 30, 11, tzinfo=UTC), datetime(9999, 12, 30, 12, tzinfo=UTC)
    )
