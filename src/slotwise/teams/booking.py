"""Booking a team service: through the one booking pipeline, for one member or for all.

A team booking is ordinary bookings of members' shares of the service: each decided on the
member's terms by `scheduling.decide` (`booking.create.propose`, with `for_team`), each
written by `booking.write` under the locks of the providers and client involved. What the
team adds is which members:

- **Round robin**: a pooled booking (`booking.pools`), decided and written by the worker's
  booking queue with the other bookings of its batch. `pools` tells the queue who may take
  each one (the members offering the service: listed, with their share); the queue decides
  it on each one's terms and, under the write's locks of every candidate, gives it to the
  first one the write's judgment finds free in the order of the rule
  (`scheduling.round_robin`): fewest bookings of the service in the period (the calendar
  month, UTC, of the booked time) per unit of weight, then the higher priority, then the
  handle. Two concurrent bookings of one time get two members: in one batch, the second
  passes over the member the first was given; in two, the second is judged after the first
  committed, under the same locks.
- **Collective**: every member must accept the time; booked in a transaction of its own.
  The rows (one per member) are judged as one by `write.take_series`, all or nothing,
  under one set of locks. The first member's row is the client's (their key, their limits,
  the client's messages); the others carry a key of their own (a client holds them all at
  the one time, which the client-side overlap rule would otherwise refuse) and message only
  their member. They share a ``team_booking_id``; cancelling any cancels them all
  (`booking.lifecycle`), moving any moves them all (`booking.reschedule`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking import create, write
from slotwise.booking.errors import TermsChanged, refused
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.pools import Candidate as PoolCandidate
from slotwise.booking.pools import NotPooled, Pool
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import ATTEMPTS, Known, TermsCache
from slotwise.errors import AppError, Conflict, InvalidInput
from slotwise.scheduling import Proposal, Reason, Refusal
from slotwise.scheduling.round_robin import Entrant
from slotwise.teams import repository
from slotwise.teams.models import Team, TeamMode, TeamService
from slotwise.teams.schemas import TeamBookingCreate
from slotwise.teams.service import Member, TeamNotFound, TeamServiceNotFound
from slotwise.users.models import User


class OffsetRequired(InvalidInput):
    code = "offset_required"
    message = "A team has no zone of its own: give the start with its UTC offset."


class CollectiveNeedsSignIn(Conflict):
    code = "collective_needs_sign_in"
    message = (
        "A member of this team verifies guests' emails by a link per booking: sign in to book "
        "all of them at once."
    )


@dataclass(frozen=True, slots=True)
class TeamRequest:
    """A team booking as the booking queue carries it to ``pools``."""

    team_ref: str
    data: TeamBookingCreate


@dataclass(frozen=True, slots=True)
class TeamPool(Pool):
    """A round-robin booking's pool: the team, its service, and the members offering it
    (one for each candidate, in the same order)."""

    team: Team
    team_service: TeamService
    members: list[Member]


@dataclass(frozen=True, slots=True)
class TeamBooked:
    team: Team
    team_service: TeamService
    team_booking_id: uuid.UUID | None
    booked: list[tuple[Member, create.Booked]]


def request(team_ref: str, data: TeamBookingCreate) -> TeamRequest:
    """A team booking to submit to the booking queue (``BookingQueue.submit_pooled``)."""
    if data.start_datetime.tzinfo is None:
        raise OffsetRequired()
    return TeamRequest(team_ref, data)


async def pools(session: AsyncSession, requests: Sequence[Any]) -> list[Pool | Exception]:
    """The booking queue's ``Pools``: each team booking's pool (its team's members offering
    the service, in the team's order) or its refusal, in one statement; a collective
    service's is ``NotPooled`` (its caller books it: ``book_collective``)."""
    asked: list[TeamRequest] = list(requests)
    contexts = await repository.booking_contexts(
        session, [(one.team_ref, one.data.service_id) for one in asked]
    )
    return [_pool(one, context) for one, context in zip(asked, contexts, strict=True)]


def _pool(asked: TeamRequest, context: repository.Context) -> Pool | Exception:
    try:
        team, team_service, offering = _offering(context)
    except AppError as refusal:
        return refusal
    if team_service.mode is not TeamMode.ROUND_ROBIN:
        return NotPooled()
    return TeamPool(
        candidates=[
            PoolCandidate(
                _asked(member, share_id, asked.data),
                Entrant(member.weight, member.priority, member.public_handle),
            )
            for member, share_id in offering
        ],
        team=team,
        team_service=team_service,
        members=[member for member, _share_id in offering],
    )


def round_robin_booked(pool: Pool, booked: create.Booked) -> TeamBooked:
    """A round-robin booking's answer: the member the queue gave it to."""
    assert isinstance(pool, TeamPool)  # read by ``pools``
    provider_id = booked.appointment.provider_id
    member = next(member for member in pool.members if member.provider_id == provider_id)
    return TeamBooked(pool.team, pool.team_service, None, [(member, booked)])


def _offering(
    context: repository.Context,
) -> tuple[Team, TeamService, list[tuple[Member, uuid.UUID]]]:
    """The team, its service and each member offering it (listed, with their active
    share), or the refusal."""
    team, team_service, rows = context
    if team is None:
        raise TeamNotFound()
    if team_service is None or not team_service.is_active:
        raise TeamServiceNotFound()
    offering = [
        (Member.of(row), row["share_id"])
        for row in rows
        if row["listed"] and row["share_id"] is not None
    ]
    if not offering:  # nobody offers it: no time of it is a slot
        raise refused(Refusal(Reason.OUTSIDE_AVAILABILITY))
    return team, team_service, offering


async def members_offering(
    session: AsyncSession, team_ref: str, service_id: uuid.UUID
) -> list[uuid.UUID]:
    """The providers a booking of the team's service may place time with (those a booking
    chooses from; none if the team or its service is not found): whose calendars are synced
    first, with SLOTWISE_CALENDAR_SYNC_BEFORE_BOOKING."""
    (context,) = await repository.booking_contexts(session, [(team_ref, service_id)])
    try:
        _team, _service, offering = _offering(context)
    except AppError:
        return []
    return [member.provider_id for member, _share_id in offering]


async def book_collective(
    session: AsyncSession,
    *,
    kept_terms: TermsCache,
    team_ref: str,
    user: User | None,
    data: TeamBookingCreate,
    now: datetime,
    guests: GuestPolicy,
) -> TeamBooked:
    """A collective booking (``pools`` found it ``NotPooled``), in the session's
    transaction."""
    (context,) = await repository.booking_contexts(session, [(team_ref, data.service_id)])
    team, team_service, offering = _offering(context)
    asked = [(member, _asked(member, share_id, data)) for member, share_id in offering]
    client_key = create.check_caller(user, asked[0][1])
    return await _collective(
        session, kept_terms, team, team_service, asked, user, client_key, now, guests
    )


def _asked(member: Member, share_id: uuid.UUID, data: TeamBookingCreate) -> AppointmentCreate:
    return AppointmentCreate.model_construct(
        provider_id=str(member.provider_id),
        start_datetime=data.start_datetime,
        end_datetime=None,
        service_id=share_id,
        notes=data.notes,
        guest_details=data.guest_details,
        hold_token=None,
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A member's decision of a collective booking."""

    member: Member
    asked: AppointmentCreate  # the booking as the member's own: their share, the time
    known: Known
    proposal: Proposal


async def _decide(
    session: AsyncSession,
    kept_terms: TermsCache,
    member: Member,
    asked: AppointmentCreate,
    *,
    user: User | None,
    client_key: str,
    now: datetime,
    fresh: bool,
) -> Candidate | Refusal:
    """The member's decision, on kept terms, or on fresh ones when kept ones refuse (a
    refusal is given on fresh terms only, as `create.book` does)."""
    while True:
        known, kept = await kept_terms.get(session, asked.provider_id, now=now, fresh=fresh)
        proposal = create.propose(
            known.terms, user=user, data=asked, client_key=client_key, now=now, for_team=True
        )
        if isinstance(proposal, Refusal):
            if kept:
                fresh = True
                continue
            return proposal
        return Candidate(member, asked, known, proposal)


def _first_refusal(decided: list[Candidate | Refusal]) -> Refusal:
    return next(one for one in decided if isinstance(one, Refusal))


async def _collective(
    session: AsyncSession,
    kept_terms: TermsCache,
    team: Team,
    team_service: TeamService,
    asked: list[tuple[Member, AppointmentCreate]],
    user: User | None,
    client_key: str,
    now: datetime,
    guests: GuestPolicy,
) -> TeamBooked:
    fresh = False
    for _ in range(ATTEMPTS):
        decided = [
            await _decide(
                session,
                kept_terms,
                member,
                one,
                user=user,
                client_key=client_key,
                now=now,
                fresh=fresh,
            )
            for member, one in asked
        ]
        candidates = [one for one in decided if isinstance(one, Candidate)]
        if len(candidates) < len(decided):
            raise refused(_first_refusal(decided))
        if user is None and any(c.known.terms.verify_guest_email for c in candidates):
            raise CollectiveNeedsSignIn()
        group = uuid.uuid4()
        booked_rows = [
            _member_row(session, c, index, group, user=user, now=now, guests=guests)
            for index, c in enumerate(candidates)
        ]
        outcomes = await write.take_series(
            session, [row for _booked, row in booked_rows], all_or_nothing=True
        )
        refusals = [outcome for outcome in outcomes if outcome is not None]
        if not refusals:
            return TeamBooked(
                team,
                team_service,
                group,
                [
                    (c.member, booked)
                    for c, (booked, _row) in zip(candidates, booked_rows, strict=True)
                ],
            )
        if any(outcome.reason is Reason.TERMS_CHANGED for outcome in refusals):
            fresh = True
            continue
        raise refused(refusals[0])
    raise TermsChanged()


def _member_row(
    session: AsyncSession,
    candidate: Candidate,
    index: int,
    group: uuid.UUID,
    *,
    user: User | None,
    now: datetime,
    guests: GuestPolicy,
) -> tuple[create.Booked, write.Row]:
    """A member's row of a collective booking: the first is the client's; each other one
    holds its member's time under a key of its own, counts toward no limit of the client's,
    and messages only its member."""
    proposal = candidate.proposal
    if index > 0:
        proposal = replace(proposal, client_key=f"team:{group}:{index}", counted_per_client=False)
    booked = create.new_booking(
        candidate.known,
        proposal,
        user=user,
        data=candidate.asked,
        now=now,
        guests=guests,
        team_booking_id=group,
    )
    if index > 0:  # managed through the first row (its guest's manage token)
        vars(booked.appointment).update(manage_token_hash=None)
        booked = replace(booked, manage_token=None)
    row = create.row_of(session, booked, proposal, guests)
    if index > 0:
        row = replace(
            row,
            claim=replace(row.claim, check_standing=False, client_cap=None, guest_cap=False),
            messages=[
                message
                for message in row.messages
                if message["context"].get("recipient_role") == "provider"
            ],
        )
    return booked, row
