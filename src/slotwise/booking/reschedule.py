"""Rescheduling: the new time is decided, judged and taken in the transaction that frees
the old, by the same decision and the same judgment as a new booking.

A collective team booking (``team_booking_id``: one row per member, ``slotwise.teams``)
moves whole: moving any of its rows moves every member's, each decided on its member's
terms, all judged under one set of locks and written together, or none (the first
member's refusal is the answer)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.booking import access as access_rules
from slotwise.booking import change, publish, repository, waitlist, waitlist_repository, write
from slotwise.booking.access import Access
from slotwise.booking.errors import InvalidTransition, TermsChanged, refused
from slotwise.booking.integrity import raise_for_constraint
from slotwise.booking.lifecycle import check_window
from slotwise.booking.models import ACTIVE_STATUSES, Appointment, Status
from slotwise.booking.present import appointment_read
from slotwise.booking.schemas import AppointmentRead, RescheduleRequest
from slotwise.booking.terms import ATTEMPTS, TermsCache, covering
from slotwise.errors import AppError
from slotwise.notifications import outbox
from slotwise.scheduling import Interval, Kind, OutOfRange, Placement, Reason, Refusal
from slotwise.users.models import User


@dataclass(frozen=True, slots=True)
class Part:
    """One row that moves: who acts on it, what it asks, and (once judged) where it goes."""

    access: Access
    request: scheduling.Request


@dataclass(frozen=True, slots=True)
class Decided:
    terms: scheduling.Terms
    placement: Placement
    seat_no: int  # the seat it takes at its new time (1 when not a seat)


@dataclass(frozen=True, slots=True)
class Planned:
    """A reschedule decided and judged, nothing of it written yet: the row acted on, every
    row that moves with it (``parts``), and where each goes."""

    access: Access
    parts: list[Part]
    decided: list[Decided]


async def reschedule(
    session: AsyncSession,
    access: Access,
    *,
    kept_terms: TermsCache,
    data: RescheduleRequest,
    reminder_offsets: list[int],
    now: datetime,
) -> Appointment:
    """The appointment moved to the new time, in the session's transaction: ``plan``,
    then ``carry_out``."""
    planned = await plan(session, access, kept_terms=kept_terms, data=data, now=now)
    return await carry_out(session, planned, data=data, reminder_offsets=reminder_offsets, now=now)


@dataclass(frozen=True, slots=True)
class Move:
    """A signed-in caller's reschedule, as the booking queue carries it."""

    user: User
    appointment_id: uuid.UUID
    data: RescheduleRequest
    reminder_offsets: list[int]
    now: datetime


async def move_each(
    session: AsyncSession,
    asked: Sequence[Move],
    found: Mapping[uuid.UUID, repository.Found],
    *,
    kept_terms: TermsCache,
) -> list[AppointmentRead | AppError]:
    """Reschedules made together (the booking queue's), each as ``reschedule`` makes one,
    in the session's transaction: for each, the appointment as moved (as the answer shows
    it, taken at once: a later reschedule of the batch may move it again), or the refusal
    (nothing written for it). ``found``: the appointments, with the other rows of their
    collective team bookings, read and locked by the caller, with every lock the
    transaction will take as it goes (``booking.queue``). Each is planned and carried out
    in turn, so a later one sees an earlier one's new time taken and its old one free.

    A refusal comes from ``plan``, before anything of it is written; anything ``carry_out``
    raises is raised, for the whole transaction to be given up (the queue then writes each
    of its jobs alone).

    Moves that cannot change one another's judgment (``_apart``) are judged in one
    statement and written in one (``_together``), with the same outcome."""
    if len(asked) > 1 and (together := await _together(session, asked, found, kept_terms)):
        return together
    answers: list[AppointmentRead | AppError] = []
    for one in asked:
        try:
            access = await access_rules.of_found(session, found.get(one.appointment_id), one.user)
            planned = await plan(session, access, kept_terms=kept_terms, data=one.data, now=one.now)
        except AppError as refusal:
            answers.append(refusal)
            continue
        moved = await carry_out(
            session, planned, data=one.data, reminder_offsets=one.reminder_offsets, now=one.now
        )
        answers.append(appointment_read(moved))
    return answers


async def plan(
    session: AsyncSession,
    access: Access,
    *,
    kept_terms: TermsCache,
    data: RescheduleRequest,
    now: datetime,
) -> Planned:
    """The reschedule decided on each moving row's provider's terms and judged under their
    locks; its refusal raised. Nothing of the reschedule is written (the locks' release of
    expired holds is, as any write's)."""
    appointment = access.appointment
    _check_movable(access, now=now)
    accesses = [access]
    start_time, end_time = data.new_start_time, data.new_end_time
    if appointment.team_booking_id is not None:  # its members' rows move together, or none
        accesses = await _team_accesses(session, access, now=now)
        start_time = _instant(start_time, appointment.timezone)
        end_time = _instant(end_time, appointment.timezone) if end_time is not None else None
    # The appointment's own service, even if no longer offered for new bookings. Only its
    # own provider or an admin moves a row as staff; anyone else's new time for it (a
    # client's, a guest's, another member's of a collective booking) is held to its
    # provider's listing, notice, horizon and limits, like a booking.
    parts = [_part(one, start_time, end_time) for one in accesses]
    return Planned(access, parts, await _decided(session, kept_terms, parts, now))


def _check_movable(access: Access, *, now: datetime) -> None:
    """A reschedule's own refusals: an appointment no longer active, or a client past the
    provider's cancellation window."""
    appointment = access.appointment
    if appointment.status not in ACTIVE_STATUSES:
        raise InvalidTransition(details={"from": appointment.status.value, "to": "rescheduled"})
    check_window(access, access.provider, now=now)


def _part(access: Access, start_time: datetime, end_time: datetime | None) -> Part:
    return Part(
        access,
        scheduling.Request(
            service_id=access.appointment.service_id,
            start_time=start_time,
            end_time=end_time,
            kind=Kind.STAFF_MOVE if access.is_staff else Kind.CLIENT_MOVE,
        ),
    )


def _claim(part: Part, terms: scheduling.Terms, placement: Placement, now: datetime) -> write.Claim:
    """The part's new time as the write judges it: its own current time aside. A client's
    new time counts toward the provider's day and week limits like a booking; the provider
    and admins move bookings past them."""
    return write.claim_for(
        terms,
        placement,
        client_key=part.access.appointment.client_key,
        now=now,
        count_day_and_week=part.request.kind is not Kind.STAFF_MOVE,
        check_standing=False,
        exclude_id=part.access.appointment.id,
    )


async def carry_out(
    session: AsyncSession,
    planned: Planned,
    *,
    data: RescheduleRequest,
    reminder_offsets: list[int],
    now: datetime,
) -> Appointment:
    """The planned moves written, each row in turn, and the times they freed handed to
    their waitlists."""
    freed = []
    for part, one in zip(planned.parts, planned.decided, strict=True):
        moved, messages, before = _moving(
            part,
            one,
            data=data,
            reminder_offsets=reminder_offsets,
            now=now,
            # The client hears once, of the row acted on; each other member of theirs.
            provider_only=part.access is not planned.access,
        )
        await _written(session, [(moved, messages)])
        freed.append(before)
    # The old times (or seats), freed, go to the first in their waitlists (booking.waitlist).
    for part, before in zip(planned.parts, freed, strict=True):
        if before is not None:
            provider_id = part.access.appointment.provider_id
            await waitlist.promote(session, {provider_id: [before]}, now=now)
    return planned.access.appointment


async def _team_accesses(session: AsyncSession, access: Access, *, now: datetime) -> list[Access]:
    """Every active member's row of the acted-on row's collective booking (locked, in the
    order they are locked in), each as the same actor acts on it; a client is held to each
    member's cancellation window."""
    team_booking_id = access.appointment.team_booking_id
    assert team_booking_id is not None
    accesses = []
    for found in await repository.team_rows(session, team_booking_id, lock=True):
        if found.appointment.id == access.appointment.id:
            accesses.append(access)
            continue
        if found.appointment.status not in ACTIVE_STATUSES:
            continue
        sibling = replace(
            access,
            appointment=found.appointment,
            provider=found.provider,
            client=found.client,
            service_name=found.service_name,
        )
        check_window(sibling, found.provider, now=now)
        accesses.append(sibling)
    return accesses


def _instant(time: datetime, zone: str) -> datetime:
    """A team's members may live in different zones: a new start or end without an offset
    is read in the zone of the row acted on, and the same instant asked of every member."""
    try:
        return scheduling.read_instant(time, ZoneInfo(zone))
    except (OutOfRange, OverflowError):
        return time  # each member's decision refuses it as it would any such time


async def _decided(
    session: AsyncSession, kept_terms: TermsCache, parts: list[Part], now: datetime
) -> list[Decided]:
    """Each part's new time decided on its provider's terms, then all judged free together
    under the locks (each its own current time aside), with the seat number each takes
    there; refusals on kept terms confirmed on fresh ones. The first refusal is raised."""
    stale: set[int] = set()
    for _ in range(ATTEMPTS):
        placed = [
            await _placed(session, kept_terms, part, now=now, fresh=index in stale)
            for index, part in enumerate(parts)
        ]
        claims = [
            _claim(part, terms, placement, now)
            for part, (terms, placement) in zip(parts, placed, strict=True)
        ]
        outcomes = await write.check_moves(session, claims)
        changed = {
            index
            for index, outcome in enumerate(outcomes)
            if isinstance(outcome, Refusal) and outcome.reason is Reason.TERMS_CHANGED
        }
        if changed:
            stale |= changed
            continue
        refusal = next((one for one in outcomes if isinstance(one, Refusal)), None)
        if refusal is not None:
            raise refused(refusal)
        return [
            Decided(terms, placement, seat_no)
            for (terms, placement), seat_no in zip(placed, outcomes, strict=True)
            if isinstance(seat_no, int)
        ]
    raise TermsChanged()


async def _placed(
    session: AsyncSession, kept_terms: TermsCache, part: Part, *, now: datetime, fresh: bool
) -> tuple[scheduling.Terms, Placement]:
    """The part's new time decided on its provider's terms (kept ones, or fresh ones when
    kept ones refuse: a refusal is given on fresh terms only)."""
    while True:
        known, kept = await kept_terms.get(
            session, str(part.access.provider.id), now=now, fresh=fresh
        )
        terms = await covering(session, known, part.request)
        decided = scheduling.decide(terms, part.request, now=now)
        if isinstance(decided, Placement):
            return terms, decided
        if not kept:
            raise refused(decided)
        fresh = True


async def _written(session: AsyncSession, moves: list[tuple[change.Change, outbox.Batch]]) -> None:
    """The moves' rows written with their history, messages and webhook events
    (``change.write_each``); a constraint's refusal raised as the API's error."""
    try:
        await change.write_each(session, moves)
    except IntegrityError as exc:
        raise_for_constraint(exc)


def _moving(
    part: Part,
    decided: Decided,
    *,
    data: RescheduleRequest,
    reminder_offsets: list[int],
    now: datetime,
    provider_only: bool,
) -> tuple[change.Change, outbox.Batch, Interval | None]:
    """The part's row moved to its decided time (``change.apply``: shown on the loaded row)
    with its history, and its messages (its provider's alone: ``provider_only``), to be
    written (``_written``); and the time (or seat) it frees, or None."""
    access, placement = part.access, decided.placement
    appointment = access.appointment
    before_start, before_status = appointment.start_at, appointment.status
    before_end = appointment.end_at
    before_blocked = Interval(appointment.blocked_start_at, appointment.blocked_end_at)
    before_session = appointment.session_key
    status = appointment.status
    # A client's new time needs the provider's confirmation again, if the provider confirms.
    if access.is_client_side and decided.terms.requires_confirmation:
        status = Status.PENDING
    moved = change.apply(
        appointment,
        {
            "start_at": placement.start_at,
            "end_at": placement.end_at,
            "blocked_start_at": placement.blocked_start_at,
            "blocked_end_at": placement.blocked_end_at,
            # A seat moves to the session at its new time (a one-to-one row stays its own).
            "session_key": placement.session_key or appointment.id,
            "seat_no": decided.seat_no,
            "capacity": placement.offering.capacity,
            "sequence": appointment.sequence + 1,
            "status": status,
        },
        actor=access.actor,
        role=access.role,
        action="rescheduled",
        now=now,
        from_status=before_status.value,
        to_status=status.value,
        from_start_at=before_start,
        to_start_at=placement.start_at,
        reason=data.reason,
    )
    messages = outbox.Batch()
    outbox.add_rescheduled(
        messages,
        booking=publish.acted_facts(access),
        offsets=reminder_offsets,
        previous_start_at=before_start,
        previous_end_at=before_end,
        before=before_status,
        now=now,
    )
    if provider_only:
        messages.rows = [
            m for m in messages.rows if m["context"].get("recipient_role") == "provider"
        ]
    if (
        before_blocked != Interval(appointment.blocked_start_at, appointment.blocked_end_at)
        or before_session != appointment.session_key
    ):
        return moved, messages, before_blocked
    return moved, messages, None


# -- several moves of a batch at once ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ready:
    """A move of the batch decided on its provider's terms, not yet judged."""

    index: int  # its place among the batch's moves
    move: Move
    part: Part
    claim: write.Claim
    terms: scheduling.Terms
    placement: Placement


async def _together(
    session: AsyncSession,
    asked: Sequence[Move],
    found: Mapping[uuid.UUID, repository.Found],
    kept_terms: TermsCache,
) -> list[AppointmentRead | AppError] | None:
    """``move_each``'s answers, the moves judged in one statement and written in one, when
    none of them can change another's judgment (``_apart``), none moves an appointment
    another moves, the transaction released the expired holds they would release (a
    batch's first step, ``booking.queue``) and nobody waits in their providers' lines
    (whose hand-on of a freed time would come before the next judgment); None, with
    nothing written, when that is not so: then each is planned and carried out in turn.
    Every move is decided (``_placed``), judged (``write.check_moves``) and written
    (``change.write_each``, as ``change.write`` writes one) as alone."""
    if len({move.appointment_id for move in asked}) < len(asked):
        return None  # moved twice: the second is checked where the first leaves the row
    rows = [hit.appointment for move in asked if (hit := found.get(move.appointment_id))]
    providers, clients = {row.provider_id for row in rows}, {row.client_key for row in rows}
    latest = max(move.now for move in asked)
    if not repository.released_already(session, providers, clients, now=latest):
        return None  # each move's judgment releases expired holds at its own clock
    answers: list[AppointmentRead | AppError | None] = [None] * len(asked)
    ready: list[_Ready] = []
    for index, move in enumerate(asked):
        try:
            access = await access_rules.of_found(session, found.get(move.appointment_id), move.user)
            if access.appointment.team_booking_id is not None:
                return None  # its members' rows move together: planned as a whole
            _check_movable(access, now=move.now)
            part = _part(access, move.data.new_start_time, move.data.new_end_time)
            terms, placement = await _placed(session, kept_terms, part, now=move.now, fresh=False)
        except AppError as refusal:
            answers[index] = refusal
            continue
        claim = _claim(part, terms, placement, move.now)
        ready.append(_Ready(index, move, part, claim, terms, placement))
    if not _apart(ready):
        return None
    outcomes = await write.check_moves(session, [one.claim for one in ready]) if ready else []
    lines = {one.claim.provider_id for one in ready} - waitlist_repository.nobody_waits(session)
    stale = any(
        isinstance(outcome, Refusal) and outcome.reason is Reason.TERMS_CHANGED
        for outcome in outcomes
    )
    if stale or (lines and len(ready) > 1):
        return None
    gathered: list[tuple[change.Change, outbox.Batch]] = []
    freed: list[tuple[uuid.UUID, Interval, datetime]] = []
    for one, outcome in zip(ready, outcomes, strict=True):
        if isinstance(outcome, Refusal):
            answers[one.index] = refused(outcome)
            continue
        moved, messages, before = _moving(
            one.part,
            Decided(one.terms, one.placement, outcome),
            data=one.move.data,
            reminder_offsets=one.move.reminder_offsets,
            now=one.move.now,
            provider_only=False,
        )
        gathered.append((moved, messages))
        if before is not None:
            freed.append((moved.appointment.provider_id, before, one.move.now))
        answers[one.index] = appointment_read(moved.appointment)
    await _written(session, gathered)
    for provider_id, before, now in freed:  # as ``carry_out`` hands each on
        await waitlist.promote(session, {provider_id: [before]}, now=now)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def _apart(ready: Sequence[_Ready]) -> bool:
    """Can no move of these change another's judgment, so that judging them at once gives
    what judging each after the earlier ones were written gives? Not when a later one's new
    time meets the time an earlier one leaves or takes (the provider's or the client's:
    the blocked spans, which hold the times), when two count toward the same provider's day
    or week limits, or for a seat (its session's seats)."""
    for later, one in enumerate(ready):
        appointment = one.part.access.appointment
        if one.placement.session_key is not None or appointment.session_key != appointment.id:
            return False
        for earlier in ready[:later]:
            same_provider = earlier.claim.provider_id == one.claim.provider_id
            if not same_provider and earlier.claim.client_key != one.claim.client_key:
                continue
            left = earlier.part.access.appointment
            if one.placement.blocked.overlaps(
                Interval(left.blocked_start_at, left.blocked_end_at)
            ) or one.placement.blocked.overlaps(earlier.placement.blocked):
                return False
            limited = (one.claim.day_cap, one.claim.week_cap, earlier.claim.day_cap)
            if same_provider and any(cap is not None for cap in (*limited, earlier.claim.week_cap)):
                return False
    return True
