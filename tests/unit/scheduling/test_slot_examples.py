"""compute_slots on small examples in UTC, where wall time and instants coincide."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from slotwise.scheduling import (
    BookingPolicy,
    DateOverride,
    Interval,
    OverrideKind,
    ServiceSpec,
    Slot,
    TimeOff,
    TimeRange,
    WeeklyRule,
    compute_slots,
)

UTC_ZONE = ZoneInfo("UTC")
MONDAY_DATE = date(2026, 3, 2)
MONDAY_NINE_TO_ELEVEN = [WeeklyRule(0, time(9), time(11))]
HALF_HOUR = ServiceSpec(duration=timedelta(minutes=30))
LONG_AGO_AT = datetime(2026, 1, 1, tzinfo=UTC)


def at(hhmm: str, on_date: date = MONDAY_DATE) -> datetime:
    return datetime.combine(on_date, time.fromisoformat(hhmm), tzinfo=UTC)


def busy(start: str, end: str) -> Interval:
    return Interval(at(start), at(end))


def starts(slots: list[Slot]) -> list[str]:
    return [slot.start_at.strftime("%H:%M") for slot in slots]


def slots_for(**changes: Any) -> list[Slot]:
    arguments: dict[str, Any] = {
        "zone": UTC_ZONE,
        "start_date": MONDAY_DATE,
        "end_date": MONDAY_DATE,
        "weekly": MONDAY_NINE_TO_ELEVEN,
        "service": HALF_HOUR,
        "now": LONG_AGO_AT,
    } | changes
    slots: list[Slot] = compute_slots(**arguments)
    return slots


class TestGrid:
    def test_step_defaults_to_the_duration(self) -> None:
        assert starts(slots_for()) == ["09:00", "09:30", "10:00", "10:30"]

    def test_slots_are_utc_and_exactly_the_duration(self) -> None:
        for slot in slots_for():
            assert slot.start_at.tzinfo is UTC
            assert slot.end_at - slot.start_at == timedelta(minutes=30)

    def test_interval_shorter_than_duration(self) -> None:
        service = ServiceSpec(duration=timedelta(minutes=30), interval=timedelta(minutes=15))
        assert starts(slots_for(service=service)) == [
            "09:00", "09:15", "09:30", "09:45", "10:00", "10:15", "10:30",
        ]  # fmt: skip

    def test_interval_longer_than_duration(self) -> None:
        service = ServiceSpec(duration=timedelta(minutes=30), interval=timedelta(minutes=45))
        assert starts(slots_for(service=service)) == ["09:00", "09:45", "10:30"]

    def test_slot_must_fit_inside_the_range(self) -> None:
        service = ServiceSpec(duration=timedelta(minutes=45))
        assert starts(slots_for(service=service)) == ["09:00", "09:45"]

    def test_each_range_has_its_own_grid(self) -> None:
        weekly = [WeeklyRule(0, time(9), time(10)), WeeklyRule(0, time(10, 10), time(11, 10))]
        assert starts(slots_for(weekly=weekly)) == ["09:00", "09:30", "10:10", "10:40"]

    def test_adjacent_ranges_form_one_grid(self) -> None:
        weekly = [WeeklyRule(0, time(9), time(9, 45)), WeeklyRule(0, time(9, 45), time(11))]
        assert starts(slots_for(weekly=weekly)) == ["09:00", "09:30", "10:00", "10:30"]

    def test_several_days_in_order(self) -> None:
        weekly = [WeeklyRule(day, time(9), time(10)) for day in (0, 1, 2)]
        slots = slots_for(weekly=weekly, end_date=date(2026, 3, 4))
        assert [slot.start_at for slot in slots] == [
            at("09:00"), at("09:30"),
            at("09:00", date(2026, 3, 3)), at("09:30", date(2026, 3, 3)),
            at("09:00", date(2026, 3, 4)), at("09:30", date(2026, 3, 4)),
        ]  # fmt: skip

    def test_overrides_and_time_off(self) -> None:
        weekly = [WeeklyRule(day, time(9), time(10)) for day in (0, 1, 2)]
        slots = slots_for(
            weekly=weekly,
            end_date=date(2026, 3, 4),
            overrides=[
                DateOverride(MONDAY_DATE, OverrideKind.REPLACE, (TimeRange(time(14), time(15)),))
            ],
            time_off=[TimeOff(date(2026, 3, 3), date(2026, 3, 3))],
        )
        assert [slot.start_at for slot in slots] == [
            at("14:00"), at("14:30"), at("09:00", date(2026, 3, 4)), at("09:30", date(2026, 3, 4)),
        ]  # fmt: skip


class TestBusy:
    def test_overlapping_slots_are_removed_and_touching_ones_kept(self) -> None:
        assert starts(slots_for(busy=[busy("09:30", "10:00")])) == ["09:00", "10:00", "10:30"]

    def test_partial_overlap(self) -> None:
        assert starts(slots_for(busy=[busy("09:50", "10:05")])) == ["09:00", "10:30"]

    def test_busy_order_and_overlaps_do_not_matter(self) -> None:
        busy_intervals = [busy("10:40", "10:50"), busy("09:10", "09:20"), busy("09:15", "09:25")]
        assert starts(slots_for(busy=busy_intervals)) == ["09:30", "10:00"]

    def test_empty_busy_interval_blocks_nothing(self) -> None:
        assert starts(slots_for(busy=[busy("09:40", "09:40")])) == [
            "09:00", "09:30", "10:00", "10:30",
        ]  # fmt: skip

    def test_buffer_after_widens_the_candidate(self) -> None:
        service = ServiceSpec(duration=timedelta(minutes=30), buffer_after=timedelta(minutes=15))
        # 09:00 needs 09:00-09:45 free; busy starts 09:40
        assert starts(slots_for(service=service, busy=[busy("09:40", "10:00")])) == [
            "10:00",
            "10:30",
        ]

    def test_buffer_before_widens_the_candidate(self) -> None:
        service = ServiceSpec(duration=timedelta(minutes=30), buffer_before=timedelta(minutes=15))
        # 10:00 needs 09:45-10:30 free; busy ends 09:50
        assert starts(slots_for(service=service, busy=[busy("09:20", "09:50")])) == [
            "10:30",
        ]

    def test_buffers_touching_busy_time_are_fine(self) -> None:
        service = ServiceSpec(
            duration=timedelta(minutes=30),
            buffer_before=timedelta(minutes=10),
            buffer_after=timedelta(minutes=10),
        )
        # 09:30 widened is 09:20-10:10, exactly between the two busy intervals
        slots = slots_for(service=service, busy=[busy("09:00", "09:20"), busy("10:10", "11:00")])
        assert starts(slots) == ["09:30"]

    def test_buffers_may_leave_availability(self) -> None:
        service = ServiceSpec(
            duration=timedelta(hours=2),
            buffer_before=timedelta(hours=1),
            buffer_after=timedelta(hours=1),
        )
        assert starts(slots_for(service=service)) == ["09:00"]

    def test_busy_time_on_other_days_is_irrelevant(self) -> None:
        other_day = date(2026, 3, 3)
        busy_intervals = [Interval(at("09:00", other_day), at("11:00", other_day))]
        assert len(slots_for(busy=busy_intervals)) == 4


class TestPolicy:
    def test_notice_keeps_the_grid(self) -> None:
        policy = BookingPolicy(min_notice=timedelta(minutes=20))
        # earliest start 09:10, the grid stays on :00 and :30
        assert starts(slots_for(policy=policy, now=at("08:50"))) == ["09:30", "10:00", "10:30"]

    def test_notice_is_inclusive(self) -> None:
        policy = BookingPolicy(min_notice=timedelta(hours=1))
        assert starts(slots_for(policy=policy, now=at("09:00"))) == ["10:00", "10:30"]

    def test_horizon_is_inclusive(self) -> None:
        policy = BookingPolicy(max_advance=timedelta(hours=1))
        assert starts(slots_for(policy=policy, now=at("09:00"))) == ["09:00", "09:30", "10:00"]

    def test_now_in_another_zone(self) -> None:
        now_at = at("09:10").astimezone(ZoneInfo("America/New_York"))
        assert starts(slots_for(now=now_at)) == ["09:30", "10:00", "10:30"]

    def test_no_slots_in_the_past_even_without_notice(self) -> None:
        assert slots_for(now=at("12:00")) == []


class TestValidation:
    def test_start_date_after_end_date(self) -> None:
        with pytest.raises(ValueError, match="start_date"):
            slots_for(end_date=date(2026, 3, 1))

    def test_naive_now(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            slots_for(now=datetime(2026, 1, 1))

    @pytest.mark.parametrize(
        "fields",
        [
            {"duration": timedelta(0)},
            {"duration": timedelta(minutes=-30)},
            {"duration": timedelta(minutes=30), "buffer_before": timedelta(minutes=-1)},
            {"duration": timedelta(minutes=30), "buffer_after": timedelta(minutes=-1)},
            {"duration": timedelta(minutes=30), "interval": timedelta(0)},
        ],
    )
    def test_service_spec(self, fields: dict[str, timedelta]) -> None:
        with pytest.raises(ValueError, match=r"duration|buffer|interval"):
            ServiceSpec(**fields)
