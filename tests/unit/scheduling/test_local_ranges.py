"""Weekly rules, date overrides and time off: validation and precedence."""

from datetime import UTC, date, time

import pytest

from slotwise.scheduling import (
    DateOverride,
    OverrideKind,
    TimeOff,
    TimeRange,
    WeeklyRule,
    local_ranges_for,
)

MONDAY_DATE = date(2026, 3, 2)
TUESDAY_DATE = date(2026, 3, 3)


def tr(start: str, end: str) -> TimeRange:
    return TimeRange(time.fromisoformat(start), time.fromisoformat(end))


def monday(start: str, end: str, **validity: date) -> WeeklyRule:
    return WeeklyRule(0, time.fromisoformat(start), time.fromisoformat(end), **validity)


WEEKLY = [monday("09:00", "12:00"), monday("13:00", "17:00")]


class TestValidation:
    @pytest.mark.parametrize(("start", "end"), [("10:00", "09:00"), ("09:00", "09:00")])
    def test_time_range_needs_start_before_end(self, start: str, end: str) -> None:
        with pytest.raises(ValueError, match="before"):
            tr(start, end)

    def test_time_range_rejects_aware_times(self) -> None:
        with pytest.raises(ValueError, match="wall"):
            TimeRange(time(9, tzinfo=UTC), time(10))

    @pytest.mark.parametrize("day_of_week", [-1, 7])
    def test_weekly_rule_day_of_week(self, day_of_week: int) -> None:
        with pytest.raises(ValueError, match="day_of_week"):
            WeeklyRule(day_of_week, time(9), time(10))

    def test_weekly_rule_times(self) -> None:
        with pytest.raises(ValueError, match="before"):
            monday("10:00", "09:00")

    def test_weekly_rule_validity_window(self) -> None:
        with pytest.raises(ValueError, match="valid_from_date"):
            monday("09:00", "10:00", valid_from_date=TUESDAY_DATE, valid_until_date=MONDAY_DATE)

    def test_unavailable_override_has_no_ranges(self) -> None:
        with pytest.raises(ValueError, match="UNAVAILABLE"):
            DateOverride(MONDAY_DATE, OverrideKind.UNAVAILABLE, (tr("09:00", "10:00"),))

    def test_override_ranges_become_a_tuple(self) -> None:
        override = DateOverride(MONDAY_DATE, OverrideKind.ADD, [tr("09:00", "10:00")])  # type: ignore[arg-type]
        assert override.ranges == (tr("09:00", "10:00"),)
        assert hash(override) == hash(DateOverride(MONDAY_DATE, OverrideKind.ADD, override.ranges))

    def test_time_off_order(self) -> None:
        with pytest.raises(ValueError, match="start_date"):
            TimeOff(TUESDAY_DATE, MONDAY_DATE)

    def test_override_kind_values_are_stable(self) -> None:
        assert [kind.value for kind in OverrideKind] == ["replace", "add", "unavailable"]


class TestLocalRangesFor:
    def test_weekly_rules_for_their_weekday_only(self) -> None:
        assert local_ranges_for(MONDAY_DATE, WEEKLY, [], []) == [
            tr("09:00", "12:00"),
            tr("13:00", "17:00"),
        ]
        assert local_ranges_for(TUESDAY_DATE, WEEKLY, [], []) == []

    def test_weekly_rules_are_merged_and_sorted(self) -> None:
        weekly = [monday("12:00", "15:00"), monday("09:00", "12:00"), monday("10:00", "11:00")]
        assert local_ranges_for(MONDAY_DATE, weekly, [], []) == [tr("09:00", "15:00")]

    def test_valid_from_and_until_are_inclusive(self) -> None:
        rule = monday("09:00", "10:00", valid_from_date=MONDAY_DATE, valid_until_date=MONDAY_DATE)
        assert local_ranges_for(MONDAY_DATE, [rule], [], []) == [tr("09:00", "10:00")]
        week_before_date = date(2026, 2, 23)
        week_after_date = date(2026, 3, 9)
        assert local_ranges_for(week_before_date, [rule], [], []) == []
        assert local_ranges_for(week_after_date, [rule], [], []) == []

    def test_open_ended_validity(self) -> None:
        from_only = monday("09:00", "10:00", valid_from_date=MONDAY_DATE)
        until_only = monday("11:00", "12:00", valid_until_date=MONDAY_DATE)
        assert local_ranges_for(date(2030, 1, 7), [from_only, until_only], [], []) == [
            tr("09:00", "10:00")
        ]
        assert local_ranges_for(date(2020, 1, 6), [from_only, until_only], [], []) == [
            tr("11:00", "12:00")
        ]

    def test_replace_overrides_the_weekly_rules(self) -> None:
        overrides = [
            DateOverride(MONDAY_DATE, OverrideKind.REPLACE, (tr("14:00", "15:00"),)),
            DateOverride(MONDAY_DATE, OverrideKind.REPLACE, (tr("08:00", "09:00"),)),
        ]
        assert local_ranges_for(MONDAY_DATE, WEEKLY, overrides, []) == [
            tr("08:00", "09:00"),
            tr("14:00", "15:00"),
        ]

    def test_replace_works_on_a_day_without_weekly_rules(self) -> None:
        overrides = [DateOverride(TUESDAY_DATE, OverrideKind.REPLACE, (tr("10:00", "11:00"),))]
        assert local_ranges_for(TUESDAY_DATE, WEEKLY, overrides, []) == [tr("10:00", "11:00")]

    def test_replace_with_no_ranges_clears_the_weekly_rules(self) -> None:
        overrides = [DateOverride(MONDAY_DATE, OverrideKind.REPLACE)]
        assert local_ranges_for(MONDAY_DATE, WEEKLY, overrides, []) == []

    def test_add_is_united_with_weekly_rules(self) -> None:
        overrides = [
            DateOverride(
                MONDAY_DATE, OverrideKind.ADD, (tr("12:00", "13:00"), tr("18:00", "19:00"))
            )
        ]
        assert local_ranges_for(MONDAY_DATE, WEEKLY, overrides, []) == [
            tr("09:00", "17:00"),
            tr("18:00", "19:00"),
        ]

    def test_add_is_united_with_replace(self) -> None:
        overrides = [
            DateOverride(MONDAY_DATE, OverrideKind.ADD, (tr("10:00", "11:00"),)),
            DateOverride(MONDAY_DATE, OverrideKind.REPLACE, (tr("10:30", "12:00"),)),
        ]
        assert local_ranges_for(MONDAY_DATE, WEEKLY, overrides, []) == [tr("10:00", "12:00")]

    def test_unavailable_beats_everything(self) -> None:
        overrides = [
            DateOverride(MONDAY_DATE, OverrideKind.ADD, (tr("18:00", "19:00"),)),
            DateOverride(MONDAY_DATE, OverrideKind.REPLACE, (tr("08:00", "09:00"),)),
            DateOverride(MONDAY_DATE, OverrideKind.UNAVAILABLE),
        ]
        assert local_ranges_for(MONDAY_DATE, WEEKLY, overrides, []) == []

    def test_time_off_beats_everything_and_is_inclusive(self) -> None:
        overrides = [DateOverride(MONDAY_DATE, OverrideKind.ADD, (tr("18:00", "19:00"),))]
        for time_off in (
            [TimeOff(MONDAY_DATE, MONDAY_DATE)],
            [TimeOff(date(2026, 2, 25), MONDAY_DATE)],
        ):
            assert local_ranges_for(MONDAY_DATE, WEEKLY, overrides, time_off) == []

    def test_time_off_elsewhere_changes_nothing(self) -> None:
        time_off = [
            TimeOff(date(2026, 2, 20), date(2026, 3, 1)),
            TimeOff(TUESDAY_DATE, TUESDAY_DATE),
        ]
        assert local_ranges_for(MONDAY_DATE, WEEKLY, [], time_off) == [
            tr("09:00", "12:00"),
            tr("13:00", "17:00"),
        ]

    def test_overrides_for_other_dates_are_ignored(self) -> None:
        overrides = [
            DateOverride(TUESDAY_DATE, OverrideKind.UNAVAILABLE),
            DateOverride(TUESDAY_DATE, OverrideKind.REPLACE, (tr("08:00", "09:00"),)),
        ]
        assert local_ranges_for(MONDAY_DATE, WEEKLY, overrides, []) == [
            tr("09:00", "12:00"),
            tr("13:00", "17:00"),
        ]

    def test_leap_day_follows_its_weekday(self) -> None:
        leap_date = date(2028, 2, 29)  # a Tuesday
        tuesday_rule = WeeklyRule(1, time(9), time(11))
        assert local_ranges_for(leap_date, [tuesday_rule], [], []) == [tr("09:00", "11:00")]
