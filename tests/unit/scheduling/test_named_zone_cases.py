"""Named cases a reader can check by hand against the tz database.

Each case states the zone's offsets and writes out the expected UTC instants. Services here
have no buffers, so slots are back to back and each lasts exactly its duration in elapsed
time, even when the wall clock jumps.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from slotwise.scheduling import (
    DateOverride,
    OverrideKind,
    ServiceSpec,
    TimeRange,
    WeeklyRule,
    compute_slots,
    day_extent,
    resolve_wall_time,
)

LONG_AGO_AT = datetime(2000, 1, 1, tzinfo=UTC)
ONE_HOUR = ServiceSpec(duration=timedelta(hours=1))
HALF_HOUR = ServiceSpec(duration=timedelta(minutes=30))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def every_day(start_time: time, end_time: time) -> list[WeeklyRule]:
    return [WeeklyRule(day, start_time, end_time) for day in range(7)]


def slot_starts(
    zone_key: str,
    on_date: date,
    start_time: time,
    end_time: time,
    service: ServiceSpec = ONE_HOUR,
    end_date: date | None = None,
) -> list[datetime]:
    slots = compute_slots(
        zone=ZoneInfo(zone_key),
        start_date=on_date,
        end_date=end_date or on_date,
        weekly=every_day(start_time, end_time),
        service=service,
        now=LONG_AGO_AT,
    )
    for slot in slots:
        assert slot.end_at - slot.start_at == service.duration
    return [slot.start_at for slot in slots]


class TestNewYork:
    """EST is -05:00, EDT is -04:00."""

    def test_spring_forward(self) -> None:
        # 2026-03-08: 02:00 EST jumps to 03:00 EDT. 01:00 EST = 06:00Z, 04:00 EDT = 08:00Z.
        assert slot_starts("America/New_York", date(2026, 3, 8), time(1), time(4)) == [
            utc(2026, 3, 8, 6),
            utc(2026, 3, 8, 7),
        ]

    def test_wall_time_in_the_gap(self) -> None:
        # 02:30 does not exist; read with the offset before the gap (EST): 07:30Z = 03:30 EDT.
        zone = ZoneInfo("America/New_York")
        assert resolve_wall_time(date(2026, 3, 8), time(2, 30), zone) == utc(2026, 3, 8, 7, 30)

    def test_fall_back(self) -> None:
        # 2026-11-01: 02:00 EDT falls back to 01:00 EST. 00:00 EDT = 04:00Z, 03:00 EST = 08:00Z.
        assert slot_starts("America/New_York", date(2026, 11, 1), time(0), time(3)) == [
            utc(2026, 11, 1, 4),
            utc(2026, 11, 1, 5),
            utc(2026, 11, 1, 6),
            utc(2026, 11, 1, 7),
        ]

    def test_ambiguous_wall_time_is_the_first_occurrence(self) -> None:
        zone = ZoneInfo("America/New_York")
        assert resolve_wall_time(date(2026, 11, 1), time(1, 30), zone) == utc(2026, 11, 1, 5, 30)


class TestLondon:
    """GMT is +00:00, BST is +01:00."""

    def test_spring_forward(self) -> None:
        # 2026-03-29: 01:00 GMT jumps to 02:00 BST. 00:00 GMT = 00:00Z, 04:00 BST = 03:00Z.
        assert slot_starts("Europe/London", date(2026, 3, 29), time(0), time(4)) == [
            utc(2026, 3, 29, 0),
            utc(2026, 3, 29, 1),
            utc(2026, 3, 29, 2),
        ]

    def test_fall_back(self) -> None:
        # 2026-10-25: 02:00 BST falls back to 01:00 GMT. 00:00 BST = 23:00Z on the 24th,
        # 03:00 GMT = 03:00Z.
        assert slot_starts("Europe/London", date(2026, 10, 25), time(0), time(3)) == [
            utc(2026, 10, 24, 23),
            utc(2026, 10, 25, 0),
            utc(2026, 10, 25, 1),
            utc(2026, 10, 25, 2),
        ]


class TestLordHowe:
    """A half-hour DST shift: standard +10:30, summer +11:00."""

    def test_spring_forward(self) -> None:
        # 2026-10-04: 02:00 +10:30 jumps to 02:30 +11:00.
        # 01:00 +10:30 = 14:30Z on the 3rd, 04:00 +11:00 = 17:00Z: two and a half hours.
        starts = slot_starts("Australia/Lord_Howe", date(2026, 10, 4), time(1), time(4), HALF_HOUR)
        assert starts == [
            utc(2026, 10, 3, 14, 30),
            utc(2026, 10, 3, 15, 0),
            utc(2026, 10, 3, 15, 30),
            utc(2026, 10, 3, 16, 0),
            utc(2026, 10, 3, 16, 30),
        ]

    def test_fall_back(self) -> None:
        # 2026-04-05: 02:00 +11:00 falls back to 01:30 +10:30.
        # 01:00 +11:00 = 14:00Z on the 4th, 03:00 +10:30 = 16:30Z: two and a half hours.
        starts = slot_starts("Australia/Lord_Howe", date(2026, 4, 5), time(1), time(3), HALF_HOUR)
        assert starts == [
            utc(2026, 4, 4, 14, 0),
            utc(2026, 4, 4, 14, 30),
            utc(2026, 4, 4, 15, 0),
            utc(2026, 4, 4, 15, 30),
            utc(2026, 4, 4, 16, 0),
        ]


def test_kolkata_half_hour_offset() -> None:
    # +05:30 all year: 09:00-12:00 is 03:30Z-06:30Z.
    assert slot_starts("Asia/Kolkata", date(2026, 6, 15), time(9), time(12)) == [
        utc(2026, 6, 15, 3, 30),
        utc(2026, 6, 15, 4, 30),
        utc(2026, 6, 15, 5, 30),
    ]


def test_guayaquil_has_no_dst() -> None:
    # -05:00 all year; on New York's spring-forward day 01:00-04:00 is a full three hours.
    assert slot_starts("America/Guayaquil", date(2026, 3, 8), time(1), time(4)) == [
        utc(2026, 3, 8, 6),
        utc(2026, 3, 8, 7),
        utc(2026, 3, 8, 8),
    ]


class TestApiaSkippedDay:
    """Samoa moved from -10:00 to +14:00 after 2011-12-29: the 30th never happened."""

    def test_no_slots_on_the_missing_day_and_neighbours_unaffected(self) -> None:
        starts = slot_starts(
            "Pacific/Apia", date(2011, 12, 29), time(9), time(12), end_date=date(2011, 12, 31)
        )
        assert starts == [
            # Thursday 29th, -10:00: 09:00 = 19:00Z
            utc(2011, 12, 29, 19),
            utc(2011, 12, 29, 20),
            utc(2011, 12, 29, 21),
            # Saturday 31st, +14:00: 09:00 = 19:00Z on the 30th
            utc(2011, 12, 30, 19),
            utc(2011, 12, 30, 20),
            utc(2011, 12, 30, 21),
        ]

    def test_the_missing_day_is_empty_even_with_an_override(self) -> None:
        missing_date = date(2011, 12, 30)
        zone = ZoneInfo("Pacific/Apia")
        assert day_extent(missing_date, zone).duration == timedelta(0)
        slots = compute_slots(
            zone=zone,
            start_date=missing_date,
            end_date=missing_date,
            weekly=every_day(time(0), time(23, 59)),
            overrides=[
                DateOverride(missing_date, OverrideKind.ADD, (TimeRange(time(0), time(23, 59)),))
            ],
            service=ONE_HOUR,
            now=LONG_AGO_AT,
        )
        assert slots == []


class TestLeapDay:
    """2028-02-29 is a Tuesday; Europe/Berlin is +01:00 in February."""

    @pytest.mark.parametrize("end_date", [date(2028, 2, 29), date(2028, 3, 1)])
    def test_tuesday_rule_applies(self, end_date: date) -> None:
        slots = compute_slots(
            zone=ZoneInfo("Europe/Berlin"),
            start_date=date(2028, 2, 28),
            end_date=end_date,
            weekly=[WeeklyRule(1, time(9), time(11))],
            service=ONE_HOUR,
            now=LONG_AGO_AT,
        )
        assert [slot.start_at for slot in slots] == [utc(2028, 2, 29, 8), utc(2028, 2, 29, 9)]

    def test_validity_window_ending_the_day_before(self) -> None:
        slots = compute_slots(
            zone=ZoneInfo("Europe/Berlin"),
            start_date=date(2028, 2, 29),
            end_date=date(2028, 2, 29),
            weekly=[WeeklyRule(1, time(9), time(11), valid_until_date=date(2028, 2, 28))],
            service=ONE_HOUR,
            now=LONG_AGO_AT,
        )
        assert slots == []
