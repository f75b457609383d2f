"""Round robin's rule, on plain values: who of several candidates gets a booking."""

from __future__ import annotations

from datetime import UTC, datetime

from slotwise.scheduling import Interval, Reason, Refusal
from slotwise.scheduling.round_robin import Entrant, choose, period

ANA = Entrant(weight=1, priority=0, handle="ana")
BEA = Entrant(weight=1, priority=0, handle="bea")
CID = Entrant(weight=2, priority=0, handle="cid")
BUSY = Refusal(Reason.SLOT_UNAVAILABLE)
STALE = Refusal(Reason.TERMS_CHANGED)


def test_fewest_bookings_per_unit_of_weight_then_priority_then_handle() -> None:
    # Cid's 3 bookings at weight 2 are 1.5 each: fewer than Ana's 2.
    assert choose([ANA, CID], [2, 3], [None, None], [False, False]) == 1
    assert choose([ANA, CID], [1, 3], [None, None], [False, False]) == 0
    first = Entrant(weight=1, priority=5, handle="zed")
    assert choose([ANA, first], [1, 1], [None, None], [False, False]) == 1  # priority
    assert choose([BEA, ANA], [0, 0], [None, None], [False, False]) == 1  # then the handle


def test_a_refused_candidate_is_passed_over_and_none_clear_is_the_firsts_refusal() -> None:
    assert choose([ANA, BEA], [0, 5], [BUSY, None], [False, False]) == 1
    conflict = Refusal(Reason.CLIENT_CONFLICT)
    assert choose([ANA, BEA], [0, 5], [conflict, BUSY], [False, False]) == conflict


def test_a_time_an_earlier_booking_of_the_batch_takes_is_passed_over_or_waited_for() -> None:
    assert choose([ANA, BEA], [0, 5], [None, None], [True, False]) == 1
    # Every clear one taken: the earlier bookings' fate decides (a refused one frees it).
    assert choose([ANA, BEA], [0, 5], [None, BUSY], [True, False]) is None


def test_stale_terms_ranked_before_the_choice_are_decided_again() -> None:
    assert choose([ANA, BEA], [0, 5], [STALE, None], [False, False]) == STALE
    assert choose([ANA, BEA], [0, 5], [None, STALE], [False, False]) == 0  # ranked after


def test_the_period_is_the_utc_calendar_month() -> None:
    december = period(datetime(2027, 12, 31, 23, 30, tzinfo=UTC))
    assert december == Interval(datetime(2027, 12, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
