"""Round robin: which of several providers gets a booking any of them could take (a
round-robin team's members, ``slotwise.teams``).

The rule: the fewest bookings in the period per unit of weight, then the higher priority,
then the handle. The period is the calendar month (UTC) of the booked time; a candidate's
bookings in it are those of the same service (the candidate's share of the team's) that
start in it and were not called off, counted by the write's transaction under its locks
(``booking.pools``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from slotwise.scheduling.decision import Reason, Refusal
from slotwise.scheduling.intervals import Interval


@dataclass(frozen=True, slots=True)
class Entrant:
    """What round robin knows of a candidate besides their bookings."""

    weight: int  # at least 1: a member with weight 2 takes twice the bookings of one with 1
    priority: int  # higher first, between equal shares
    handle: str  # last: a stable order between equals


def rank(entrant: Entrant, booked: int) -> tuple[Fraction, int, str]:
    """The candidate's place in round robin's order (lowest first), with ``booked``
    bookings in the period."""
    return Fraction(booked, entrant.weight), -entrant.priority, entrant.handle


def period(at: datetime) -> Interval:
    """The calendar month (UTC) holding ``at``: round robin's period."""
    at = at.astimezone(UTC)
    first = datetime(at.year, at.month, 1, tzinfo=UTC)
    after = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return Interval(first, after)


def choose(
    entrants: Sequence[Entrant],
    booked: Sequence[int],
    verdicts: Sequence[Refusal | None],
    taken: Sequence[bool],
) -> int | Refusal | None:
    """Who gets the booking, by index: the first candidate in round robin's order that the
    write's judgment found clear (``verdicts``: None) and that no earlier booking of its
    batch takes at that time (``taken``). Else a Refusal: the first candidate's reason when
    none is clear, or TERMS_CHANGED when a candidate ranked before any clear one was
    judged on terms that changed (decide again on fresh ones: under them it may be clear).
    None: every clear candidate is taken by an earlier booking of the batch, whose fate
    decides (a written one takes the time, a refused one leaves it).
    """
    order = sorted(range(len(entrants)), key=lambda i: rank(entrants[i], booked[i]))
    waiting = False
    for index in order:
        verdict = verdicts[index]
        if verdict is not None and verdict.reason is Reason.TERMS_CHANGED:
            return verdict
        if verdict is None and not taken[index]:
            return index
        waiting = waiting or verdict is None
    if waiting:
        return None
    refusal = verdicts[order[0]]
    assert refusal is not None  # none clear, none taken: each has its reason
    return refusal
