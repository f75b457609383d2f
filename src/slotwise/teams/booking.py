"""Booking a team service: through the one booking pipeline, for one member or for all.

A team booking is ordinary bookings of members' shares of the service: each decided on the
member's terms by `scheduling.decide` (`booking.create.propose`, with `for_team`), each
written by `booking.write` under the locks of the providers and client involved. What the
team adds is which members, and in what order:

- **Round robin**: every member whose terms accept the time is a candidate. The write's
  locks of all of them are taken first (in the write's one order, so two team bookings never
  wait on each other in a cycle), then, under them, each candidate's bookings of the
  service in the period are counted and the write's judgment is read for every candidate
  at once. The booking goes to the first candidate the judgment finds free, in the order
  of the rule: fewest bookings in the period per unit of weight, then the higher priority,
  then the handle. The period is the calendar month (UTC) of the booked time. Two
  concurrent bookings of one time queue on the same locks: the second judges after the
  first committed, so it finds that member taken and gets another, never the same one.
- **Collective**: every member must accept the time. The rows (one per member) are judged
  as one by `write.take_series`, all or nothing, under one set of locks. The first
  member's row is the client's (their key, their limits, the client's messages); the
  others carry a key of their own (a client holds them all at the one time, which the
  client-side overlap rule would otherwise refuse) and message only their member. They
  share a ``team_booking_id``; cancelling any cancels them all (`booking.lifecycle`), moving
  any moves them all (`booking.reschedule`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fractions import Fraction

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking import create, write
from slotwise.booking.errors import TermsChanged, refused
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import ATTEMPTS, Known, TermsCache
from slotwise.errors import Conflict, InvalidInput
from slotwise.scheduling import Proposal, Reason, Refusal
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
class Candidate:
    member: Member
    asked: AppointmentCreate  # the booking as the member's own: their share, the time
    known: Known
    proposal: Proposal


@dataclass(frozen=True, slots=True)
class TeamBooked:
    team: Team
    team_service: TeamService
    team_booking_id: uuid.UUID | None
    booked: list[tuple[Member, create.Booked]]


async def book(
    session: AsyncSession,
    *,
    kept_terms: TermsCache,
    team_ref: str,
    user: User | None,
    data: TeamBookingCreate,
    now: datetime,
    guests: GuestPolicy,
) -> TeamBooked:
    if data.start_datetime.tzinfo is None:
        raise OffsetRequired()
    team, team_service, rows = await repository.booking_context(session, team_ref, data.service_id)
    if team is None:
        raise TeamNotFound()
    if team_service is None or not team_service.is_active:
        raise TeamServiceNotFound()
    offering = [
        (Member.of(row), row["share_id"])
        for row in rows
        if row["listed"] and row["share_id"] is not None
    ]
    asked = [(member, _asked(member, share_id, data)) for member, share_id in offering]
    if not asked:  # nobody offers it: no time of it is a slot
        raise refused(Refusal(Reason.OUTSIDE_AVAILABILITY))
    client_key = create.check_caller(user, asked[0][1])
    if team_service.mode is TeamMode.ROUND_ROBIN:
        return await _round_robin(
            session, kept_terms, team, team_service, asked, user, client_key, now, guests
        )
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


def _row(
    session: AsyncSession,
    candidate: Candidate,
    *,
    user: User | None,
    now: datetime,
    guests: GuestPolicy,
) -> tuple[create.Booked, write.Row]:
    booked = create.new_booking(
        candidate.known, candidate.proposal, user=user, data=candidate.asked, now=now, guests=guests
    )
    return booked, create.row_of(session, booked, candidate.proposal, guests)


def _month(at: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding ``at``: round robin's period."""
    at = at.astimezone(UTC)
    first = datetime(at.year, at.month, 1, tzinfo=UTC)
    after = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return first, after


def rank(member: Member, booked: int) -> tuple[Fraction, int, str]:
    """Round robin's order: fewest bookings per unit of weight, higher priority, handle."""
    return Fraction(booked, member.weight), -member.priority, member.public_handle


async def _round_robin(
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
    stale: set[uuid.UUID] = set()
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
                fresh=member.provider_id in stale,
            )
            for member, one in asked
        ]
        candidates = [one for one in decided if isinstance(one, Candidate)]
        if not candidates:
            raise refused(_first_refusal(decided))
        # Claims only: the chosen one's rows and messages are built once it is chosen.
        claims = [
            create.claim_of(c.proposal, guest=user is None, now=now, guests=guests)
            for c in candidates
        ]
        await write.lock(session, claims)
        members = [candidate.member for candidate in candidates]
        period = _month(candidates[0].proposal.placement.start_at)
        counts = await repository.booked_counts(
            session,
            shares=[c.asked.service_id for c in candidates if c.asked.service_id is not None],
            providers=[member.provider_id for member in members],
            start_at=period[0],
            end_at=period[1],
        )
        judged = await write.judge(session, claims)
        verdicts = [
            write.verdict(claim, answers) for claim, answers in zip(claims, judged, strict=True)
        ]
        order = sorted(
            range(len(candidates)),
            key=lambda i: rank(members[i], counts.get(members[i].provider_id, 0)),
        )
        chosen = next((i for i in order if verdicts[i] is None), None)
        if chosen is None:
            changed = {
                members[i].provider_id
                for i, verdict in enumerate(verdicts)
                if verdict is not None and verdict.reason is Reason.TERMS_CHANGED
            }
            if changed:
                stale |= changed
                continue
            raise refused(verdicts[order[0]] or Refusal(Reason.SLOT_UNAVAILABLE))
        booked, row = _row(session, candidates[chosen], user=user, now=now, guests=guests)
        (outcome,) = await write.take(session, [row], locked=True)
        if outcome is None:
            return TeamBooked(team, team_service, None, [(candidates[chosen].member, booked)])
        if outcome.reason is not Reason.TERMS_CHANGED:
            raise refused(outcome)
        stale.add(candidates[chosen].member.provider_id)
    raise TermsChanged()


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
