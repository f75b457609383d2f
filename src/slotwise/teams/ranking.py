"""A team's slots ranked (`order=best`): the core's rules (`scheduling.ranking`, the same
`Ranker` as suggestions and search) over the slots the team's listing offers.

Each team slot is ranked as the slot of the member whose time it takes:

- **round robin**: the member a booking of it would go to now, by the team's rule
  (`scheduling.round_robin.rank`: fewest bookings of the service in the calendar month of the time,
  per unit of weight, then priority, then handle) among the members free then; the balance
  rule reads that count per unit of weight too (a member of weight 2 with two bookings is as
  loaded as one of weight 1 with one), so a time when a less loaded member is free ranks
  higher;
- **collective**: every member's, so the team's: the blocked spans of all of them (a slot
  next to any member's booking is adjacent) and no balance to keep (each takes it).

Ranking only orders: the slots and their members are the listing's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.availability.cache import SlotAnswer
from slotwise.availability.ranking import Ranker, offered
from slotwise.booking import repository
from slotwise.scheduling import ranking
from slotwise.scheduling.intervals import Interval
from slotwise.scheduling.round_robin import Entrant, period, rank
from slotwise.teams.models import Team, TeamMode
from slotwise.teams.service import Member


@dataclass(frozen=True, slots=True)
class Listed:
    """A member's listing of their share: the answer and the range of it offered."""

    member: Member
    share_id: uuid.UUID
    answer: SlotAnswer
    lo: int
    hi: int


async def best(
    session: AsyncSession,
    *,
    team: Team,
    mode: TeamMode,
    listed: Sequence[Listed],
    free: dict[datetime, list[str]],
    history: ranking.History,
    ranker: Ranker,
    first: date,
    last: date,
    now: datetime,
) -> list[ranking.Ranked]:
    """The team's slots (``free``: each start with the handles of its members free then),
    best first, each scored as its member's slot (the module's rules)."""
    by_member = {
        one.member.public_handle: {
            slot.start_at: slot
            for slot in offered(one.answer, one.lo, one.hi, now, one.member.full_name)
        }
        for one in listed
    }
    if mode is TeamMode.COLLECTIVE:
        slots = _collective(team, listed, by_member, free)
    else:
        slots = await _round_robin(session, listed, by_member, free)
    return ranker.rank(slots, history, first=first, last=last, now=now)


def _collective(
    team: Team,
    listed: Sequence[Listed],
    by_member: dict[str, dict[datetime, ranking.Offered]],
    free: dict[datetime, list[str]],
) -> list[ranking.Offered]:
    spans = tuple(
        sorted(
            {span for one in by_member.values() for slot in one.values() for span in slot.busy},
            key=lambda span: (span.start_at, span.end_at),
        )
    )
    first = listed[0].member.public_handle
    return [
        replace(by_member[first][start_at], provider=team.name, busy=spans, load=0)
        for start_at in sorted(free)
    ]


async def _round_robin(
    session: AsyncSession,
    listed: Sequence[Listed],
    by_member: dict[str, dict[datetime, ranking.Offered]],
    free: dict[datetime, list[str]],
) -> list[ranking.Offered]:
    by_handle = {one.member.public_handle: one for one in listed}
    periods = {period(start_at) for start_at in free}
    counts = await repository.booked_counts(
        session,
        [(one.member.provider_id, one.share_id, month) for one in listed for month in periods],
    )
    slots = []
    for start_at in sorted(free):
        month = period(start_at)

        def booked(one: Listed, month: Interval = month) -> int:
            return counts.get((one.share_id, month), 0)

        assigned = min(
            (by_handle[handle] for handle in free[start_at]),
            key=lambda one: rank(
                Entrant(one.member.weight, one.member.priority, one.member.public_handle),
                booked(one),
            ),
        )
        slot = by_member[assigned.member.public_handle][start_at]
        slots.append(replace(slot, load=booked(assigned) / assigned.member.weight))
    return slots
