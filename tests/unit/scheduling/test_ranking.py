"""Slot ranking in the core: it only orders the slots it is given, and each rule's effect."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise.scheduling import Interval
from slotwise.scheduling.ranking import (
    FEATURE_NAMES,
    History,
    Offered,
    Past,
    RankingWeights,
    Scorer,
    rank,
)

UTC_ZONE = ZoneInfo("UTC")
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday
FIRST, LAST = date(2027, 3, 1), date(2027, 3, 7)
HOUR = timedelta(hours=1)


def slot(
    start: datetime, *, busy: tuple[Interval, ...] = (), load: int = 0, who: str = "Ana"
) -> Offered:
    return Offered(start, start + HOUR, Interval(start, start + HOUR), UTC_ZONE, who, busy, load)


def at(day: int, hour: int) -> datetime:
    return datetime(2027, 3, day, hour, tzinfo=UTC)


def order(slots: list[Offered], history: History = History(), **weights: float) -> list[Offered]:
    ranked = rank(slots, history, RankingWeights(**weights), first=FIRST, last=LAST, now=NOW)
    return [one.slot for one in ranked]


ONLY = {name: 0.0 for name in ("adjacent", "preferred", "earlier", "balance", "no_show")}


def test_a_slot_next_to_a_booking_goes_first() -> None:
    booked = Interval(at(2, 10), at(2, 11))
    apart, touching = slot(at(2, 7), busy=(booked,)), slot(at(2, 11), busy=(booked,))
    assert order([apart, touching], **{**ONLY, "adjacent": 1}) == [touching, apart]
    (best, _other) = rank(
        [apart, touching], History(), RankingWeights(), first=FIRST, last=LAST, now=NOW
    )
    assert "right next to another booking: keeps Ana's day without gaps" in best.reasons
    assert order([apart, touching], **ONLY) == [apart, touching]  # off: the earlier first


def test_the_clients_usual_time_goes_first() -> None:
    tuesdays = tuple(
        Past(at(day, 15), UTC_ZONE, at(day, 15) - timedelta(days=3), no_show=False)
        for day in (2, 9, 16)
    )
    history = History(
        tuple(
            Past(p.start_at - timedelta(weeks=4), p.zone, p.booked_at - timedelta(weeks=4), False)
            for p in tuesdays
        )
    )
    monday_9, tuesday_15 = slot(at(1, 9)), slot(at(2, 15))
    assert order([monday_9, tuesday_15], history, **{**ONLY, "preferred": 1}) == [
        tuesday_15,
        monday_9,
    ]
    ranked = rank([tuesday_15], history, RankingWeights(), first=FIRST, last=LAST, now=NOW)
    assert "your usual Tuesday time" in ranked[0].reasons
    assert order([monday_9, tuesday_15], History(), **{**ONLY, "preferred": 1}) == [
        monday_9,
        tuesday_15,
    ]


def test_sooner_goes_first() -> None:
    later, sooner = slot(at(6, 9)), slot(at(1, 10))
    assert order([later, sooner], **{**ONLY, "earlier": 1}) == [sooner, later]


def test_the_provider_with_fewer_bookings_goes_first() -> None:
    busy_one, free_one = slot(at(2, 9), load=8, who="Ana"), slot(at(2, 9), load=2, who="Lee")
    ranked = rank(
        [busy_one, free_one],
        History(),
        RankingWeights(**{**ONLY, "balance": 1}),
        first=FIRST,
        last=LAST,
        now=NOW,
    )
    assert [one.slot for one in ranked] == [free_one, busy_one]
    assert "Lee has fewer bookings than the others" in ranked[0].reasons


def test_times_the_client_missed_go_last() -> None:
    missed = tuple(
        Past(at(day, 8), UTC_ZONE, at(day, 8) - timedelta(days=5), no_show=True)
        for day in (1, 8, 15)
    )
    history = History(
        tuple(
            Past(p.start_at - timedelta(weeks=6), p.zone, p.booked_at - timedelta(weeks=6), True)
            for p in missed
        )
    )
    early, late = slot(at(3, 8)), slot(at(3, 16))
    assert order([early, late], history, **{**ONLY, "no_show": 1}) == [late, early]
    ranked = rank([early], history, RankingWeights(), first=FIRST, last=LAST, now=NOW)
    assert "ranked lower: you missed many appointments at this time" in ranked[0].reasons
    assert ranked[0].features.no_show == 1.0


def test_a_model_scores_in_place_of_the_rules() -> None:
    later_first = Scorer("t", tuple(1.0 if n != "earlier" else -5.0 for n in FEATURE_NAMES), 0.0)
    later, sooner = slot(at(6, 9)), slot(at(1, 10))
    ranked = rank(
        [sooner, later],
        History(),
        RankingWeights(),
        first=FIRST,
        last=LAST,
        now=NOW,
        model=later_first,
    )
    assert [one.slot for one in ranked] == [later, sooner]
    with pytest.raises(ValueError, match="coefficients"):
        Scorer("bad", (1.0,), 0.0)


hours = st.integers(min_value=0, max_value=24 * 7 - 1)


@settings(max_examples=200, deadline=None)
@given(
    starts=st.lists(hours, min_size=0, max_size=30, unique=True),
    busy=st.lists(hours, max_size=10),
    loads=st.lists(st.integers(0, 20), min_size=30, max_size=30),
    past=st.lists(st.tuples(hours, st.booleans(), st.integers(0, 20)), max_size=15),
    weights=st.tuples(*(st.floats(0, 10) for _ in range(5))),
)
def test_ranking_only_orders_the_slots_it_is_given(
    starts: list[int],
    busy: list[int],
    loads: list[int],
    past: list[tuple[int, bool, int]],
    weights: tuple[float, ...],
) -> None:
    base = datetime(2027, 3, 1, tzinfo=UTC)
    spans = tuple(Interval(base + h * HOUR, base + (h + 1) * HOUR) for h in busy)
    slots = [
        slot(base + h * HOUR, busy=spans, load=loads[i], who=f"P{i % 3}")
        for i, h in enumerate(starts)
    ]
    history = History(
        tuple(
            Past(
                base - timedelta(days=30) + h * HOUR,
                UTC_ZONE,
                base - timedelta(days=30 + lead),
                miss,
            )
            for h, miss, lead in past
        )
    )
    ranked = rank(slots, history, RankingWeights(*weights), first=FIRST, last=LAST, now=NOW)
    assert sorted(id(one.slot) for one in ranked) == sorted(id(s) for s in slots)
    scores = [one.score for one in ranked]
    assert scores == sorted(scores, reverse=True)
