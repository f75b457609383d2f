"""Pooled bookings: a booking that any one of several providers may take, given by round
robin (a round-robin team's members: ``slotwise.teams``).

The booking queue (``booking.queue``) decides and writes them with the other bookings of
its batch. It asks the pools' owner who the candidates are (``Pools``: once a batch, for
all its pooled bookings), decides the booking on each candidate's terms, and then, in each
of the batch's writes, under the write's locks of every candidate: each one's bookings of
their service in the period (``repository.booked_counts``), and
``scheduling.round_robin.choose``, which gives the booking to the first candidate in round
robin's order that no earlier booking of the batch takes at that time. The chosen one's
row goes to the write with the batch's others (``write.take``), which judges it; refused
there, the booking is chosen again at the batch's next write on the write's judgment of
every candidate (``write.judge``), the first clear one in the same order. Two pooled
bookings of one time in one batch get two candidates, and one in a later batch (or another
worker's) is judged after them, under the same locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking.schemas import AppointmentCreate
from slotwise.scheduling.round_robin import Entrant


@dataclass(frozen=True, slots=True)
class Candidate:
    """A provider who may take a pooled booking: the booking as theirs (their provider id,
    their service, the time) and what round robin ranks them by."""

    asked: AppointmentCreate
    entrant: Entrant


@dataclass(frozen=True, slots=True)
class Pool:
    """Who may take a pooled booking, in the pool's own order (the first one's refusal is
    the booking's when none accepts it on their terms). The pools' owner may add what its
    answer needs (``teams.booking.TeamPool``)."""

    candidates: list[Candidate]


class Pools(Protocol):
    """Reads the pools of a batch's pooled bookings (``teams.booking.pools``), given as
    they were submitted (``BookingQueue.submit_pooled``): for each, its pool, or the
    error that answers it (``NotPooled``: not a pool's, booked another way)."""

    async def __call__(
        self, session: AsyncSession, requests: Sequence[Any]
    ) -> list[Pool | Exception]: ...


class NotPooled(Exception):
    """The request is for no pool (a collective team service): its caller books it."""
