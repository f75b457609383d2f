"""The one write: new bookings (or a booking's new time) asked of the database, each
answered with what became of it: written, or the reason it was not.

Every booking goes through here: single ones, idempotent ones (in the transaction that
claims their key), the batches of ``booking.queue``, guests', reschedules. The decision
on the provider's terms (``scheduling.decide``) comes first; this write judges what only
the database knows, under the locks of the providers and clients involved, in the
transaction that writes:

- the provider's rules version is still the one the decision was made at (else
  TERMS_CHANGED: decide again on fresh terms),
- the client is not blocked for no-shows (new bookings),
- no active appointment (or live hold) of the provider blocks the time, and none of the
  client's overlaps it,
- no limit is full: the provider's bookings that local day and week (sessions: a group
  session counts once however many seats it has), the client's active future bookings with
  the provider (the provider's limit, or a guest's),
- a seat of a group session finds a free seat (else SESSION_FULL); the write picks its
  number, the lowest free one, which a unique index on (session_key, seat_no) backs,
- a hold (``booking.holds``): its holder holds fewer live holds with the provider than the
  cap (else HOLD_LIMIT_REACHED).

On PostgreSQL the judgment and the INSERTs (appointments, history, messages of those
written) are one statement, after one that takes the locks and releases expired holds;
the exclusion constraints still hold the overlaps whatever happens. On SQLite the write
lock (BEGIN IMMEDIATE) serializes writers: one query judges, plain INSERTs write. A batch
holding a seat takes that way on PostgreSQL too: the seats its rows take are counted in
Python, row by row (``batch_verdicts``), between the judgment and the INSERTs; and so does
a hold, whose judgment counts its holder's holds (a statement of its own, so that a
booking's judgment is not made longer by what only holds ask).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
    func,
    literal_column,
    not_,
    null,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from slotwise.availability import changes
from slotwise.booking import busy, repository, waitlist_repository
from slotwise.booking.models import Appointment, AppointmentEvent, ClientStanding
from slotwise.db import insert_rows, padded, table_of
from slotwise.db.bulk import element_type, unnested
from slotwise.notifications.models import OutboxMessage
from slotwise.providers.models import Provider
from slotwise.scheduling import Interval, Limit, Placement, Reason, Refusal, Terms
from slotwise.webhooks import queue

_APPOINTMENTS = table_of(Appointment)
_EVENTS = table_of(AppointmentEvent)
_MESSAGES = table_of(OutboxMessage)
# A probe's appointment: every column, none given (its row is judged, never inserted).
_NO_APPOINTMENT: dict[str, Any] = dict.fromkeys(column.key for column in _APPOINTMENTS.columns)


@dataclass(frozen=True, slots=True)
class Claim:
    """What one booking asks of the database, besides its rows."""

    provider_id: uuid.UUID
    client_key: str
    start_at: datetime
    end_at: datetime
    blocked_start_at: datetime
    blocked_end_at: datetime
    rules_version: int  # the version of the terms it was decided on
    now: datetime  # the client's future bookings are those starting after it
    check_standing: bool = True  # a new booking: is the client blocked for no-shows?
    client_cap: int | None = None  # the client's active future bookings with the provider
    guest_cap: bool = False  # client_cap is a guest's (GUEST_LIMIT_REACHED), not the provider's
    day: Interval | None = None  # the local day, when the provider limits bookings a day
    day_cap: int | None = None
    week: Interval | None = None
    week_cap: int | None = None
    exclude_id: uuid.UUID | None = None  # a move: the appointment's own current time
    # A seat of a group session: the session's key and the seats it has (None: not a seat).
    session_key: uuid.UUID | None = None
    capacity: int | None = None
    # A hold: who holds it (``held_by``) and how many live holds with the provider they may
    # have (None: not a hold).
    holder: str | None = None
    hold_cap: int | None = None


def claim_for(
    terms: Terms,
    placement: Placement,
    *,
    client_key: str,
    now: datetime,
    client_cap: int | None = None,
    guest_cap: bool = False,
    count_day_and_week: bool = True,
    check_standing: bool = True,
    exclude_id: uuid.UUID | None = None,
) -> Claim:
    """The claim of a placement decided on ``terms``: their rules version, and the provider's
    day and week limits (``count_day_and_week``) with the local day and week they count."""
    limits = terms.limits
    per_day = limits.per_day if count_day_and_week else None
    per_week = limits.per_week if count_day_and_week else None
    return Claim(
        provider_id=terms.provider_id,
        client_key=client_key,
        start_at=placement.start_at,
        end_at=placement.end_at,
        blocked_start_at=placement.blocked_start_at,
        blocked_end_at=placement.blocked_end_at,
        rules_version=terms.version,
        now=now,
        check_standing=check_standing,
        client_cap=client_cap,
        guest_cap=guest_cap,
        day=terms.day_of(placement.start_at) if per_day is not None else None,
        day_cap=per_day,
        week=terms.week_of(placement.start_at) if per_week is not None else None,
        week_cap=per_week,
        exclude_id=exclude_id,
        session_key=placement.session_key,
        capacity=placement.offering.capacity if placement.session_key is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Row:
    """A new booking to write: the claim, the appointment's row, its history and messages."""

    claim: Claim
    appointment: dict[str, Any]
    events: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    # Its webhook event (booking.created), queued if it is written.
    announced: queue.Event | None = None
    probe: bool = False  # only judged, never written (``probe``)


def probe(claim: Claim) -> Row:
    """A claim to judge without its rows, for a booking its writer expects refused (its time
    was just taken): ``take`` answers it as any row, but writes nothing when it is clear.
    So a burst for one slot does not build the rows of every booking the write refuses,
    and the database still decides each one."""
    return Row(claim=claim, appointment=dict(_NO_APPOINTMENT), events=[], messages=[], probe=True)


@dataclass(frozen=True, slots=True)
class Answers:
    """What the database holds against one claim."""

    rules_version: int | None  # the provider's now (None: the provider is gone)
    client_blocked: bool
    provider_busy: bool
    client_busy: bool
    client_count: int
    day_count: int
    week_count: int
    taken_seats: frozenset[int] = frozenset()  # a seat's claim: its session's seats taken
    hold_count: int = 0  # a hold's claim: its holder's live holds with the provider
    anyone_waits: bool | None = None  # asked (``lines``): anyone in the provider's line


def verdict(claim: Claim, answers: Answers) -> Refusal | None:
    """Why the claim cannot be written, or None: the first of the judgment's reasons (a
    refusal is only meaningful on current terms, so TERMS_CHANGED comes first)."""
    if answers.rules_version != claim.rules_version:
        return Refusal(Reason.TERMS_CHANGED)
    if claim.check_standing and answers.client_blocked:
        return Refusal(Reason.CLIENT_BLOCKED)
    if answers.provider_busy:
        return Refusal(Reason.SLOT_UNAVAILABLE)
    if answers.client_busy:
        return Refusal(Reason.CLIENT_CONFLICT)
    if claim.hold_cap is not None and answers.hold_count >= claim.hold_cap:
        return Refusal(Reason.HOLD_LIMIT_REACHED, {"max_holds": claim.hold_cap})
    if claim.client_cap is not None and answers.client_count >= claim.client_cap:
        if claim.guest_cap:
            return Refusal(Reason.GUEST_LIMIT_REACHED, {"max_active_bookings": claim.client_cap})
        return _limit(Limit.PER_CLIENT, claim.client_cap)
    if claim.day_cap is not None and answers.day_count >= claim.day_cap:
        return _limit(Limit.PER_DAY, claim.day_cap)
    if claim.week_cap is not None and answers.week_count >= claim.week_cap:
        return _limit(Limit.PER_WEEK, claim.week_cap)
    # Last: a seat refused for another reason says that one, and a seat refused here took
    # nothing that a later row of its batch should count (``batch_verdicts``).
    if claim.capacity is not None and len(answers.taken_seats) >= claim.capacity:
        return Refusal(Reason.SESSION_FULL, {"capacity": claim.capacity})
    return None


def batch_verdicts(rows: list[Row], judged: list[Answers]) -> list[Refusal | None]:
    """The verdict of each row of a batch, in order, each seat counting the seats the rows
    written before it took in its session; a seat written gets its number (the lowest free
    one) in its appointment row."""
    taken: dict[uuid.UUID, frozenset[int]] = {}
    outcomes: list[Refusal | None] = []
    for row, answers in zip(rows, judged, strict=True):
        key = row.claim.session_key
        if key is not None and row.claim.capacity is not None:
            answers = replace(answers, taken_seats=taken.get(key, answers.taken_seats))
        outcome = verdict(row.claim, answers)
        if outcome is None and key is not None and row.claim.capacity is not None and not row.probe:
            seat_no = free_seat(answers.taken_seats)
            row.appointment["seat_no"] = seat_no
            taken[key] = answers.taken_seats | {seat_no}
        outcomes.append(outcome)
    return outcomes


def free_seat(taken_seats: frozenset[int]) -> int:
    """The lowest seat number not taken (never above the count taken plus one)."""
    return next(n for n in range(1, len(taken_seats) + 2) if n not in taken_seats)


def _limit(limit: Limit, maximum: int) -> Refusal:
    return Refusal(Reason.LIMIT_REACHED, {"limit": limit.value, "maximum": maximum})


async def take(
    session: AsyncSession, rows: list[Row], *, locked: bool = False
) -> list[Refusal | None]:
    """Write what the database allows of ``rows``, in the session's transaction: for each,
    None (written, with its history and messages; a probe: clear, and not written) or the
    refusal. Rows must not compete with each other (``scheduling.arrange``). ``locked``:
    this transaction took the claims' locks already (``lock``: the booking queue counts a
    pooled booking's candidates under them first)."""
    if not rows:
        return []
    claims = [row.claim for row in rows]
    if not locked:
        await _lock_and_release(session, claims)
    connection = await session.connection()
    if connection.dialect.name == "postgresql" and not _seats(claims) and not _holds(claims):
        outcomes = await _judge_and_insert(session, rows)
    else:
        judged = await judge(session, claims)
        outcomes = batch_verdicts(rows, judged)
        await _insert(session, _written(rows, outcomes))
    await _report(session, _written(rows, outcomes))
    return outcomes


def _written(rows: list[Row], outcomes: list[Refusal | None]) -> list[Row]:
    return [
        row
        for row, outcome in zip(rows, outcomes, strict=True)
        if outcome is None and not row.probe
    ]


async def _insert(session: AsyncSession, written: list[Row]) -> None:
    """The rows judged clear, with their history and messages: one INSERT per table, sent
    with the next statement (SQLite: ``insert_rows``' ``deferred``: the question of who
    subscribes to their webhook events, unless the transaction asked it already, else a
    later statement or the COMMIT). Nothing reads their outcome: judged clear under the
    locks, they fail only if the transaction does."""
    await insert_rows(
        session,
        [
            (_APPOINTMENTS, [row.appointment for row in written]),
            (_EVENTS, [event for row in written for event in row.events]),
            (_MESSAGES, [message for row in written for message in row.messages]),
        ],
        deferred=True,
    )
    held = [row.claim for row in written if row.appointment.get("hold_until") is not None]
    if held:  # a later write of the transaction releases these again if they lapse
        repository.unreleased(
            session, {claim.provider_id for claim in held}, {claim.client_key for claim in held}
        )


async def _report(session: AsyncSession, written: list[Row]) -> None:
    """What was written, told: kept listings learn of each appointment at the commit
    (``changes.moved``), and each one's webhook event is queued."""
    for row in written:
        changes.moved(session.sync_session, busy.moved(row.appointment))
    await queue.enqueue(session, [row.announced for row in written if row.announced is not None])


# -- a recurring series: rows of one client with one provider, judged as one --------------


async def take_series(
    session: AsyncSession, rows: list[Row], *, all_or_nothing: bool, refused_before: bool = False
) -> list[Refusal | None]:
    """The occurrences of a series, judged under one set of locks in the session's
    transaction, each counting what the occurrences before it take (``running_verdicts``),
    so that neither a single booking nor another series interleaves with it. Written: all
    of them or none (``all_or_nothing``; none either when ``refused_before``, occurrences the
    decision already refused), or those judged clear. Never any when the terms changed or
    the client is blocked (a refusal of the whole series). The refusal of each row, or None:
    clear (and written, unless the rule above wrote none)."""
    if not rows:
        return []
    await _lock_and_release(session, [row.claim for row in rows])
    judged = await judge(session, [row.claim for row in rows])
    outcomes = running_verdicts(rows, judged)
    refusals = {outcome.reason for outcome in outcomes if outcome is not None}
    if refusals & {Reason.TERMS_CHANGED, Reason.CLIENT_BLOCKED}:
        return outcomes
    if all_or_nothing and (refusals or refused_before):
        return outcomes
    written = _written(rows, outcomes)
    await _insert(session, written)
    await _report(session, written)
    return outcomes


def running_verdicts(rows: list[Row], judged: list[Answers]) -> list[Refusal | None]:
    """The verdict of each row, in order, its answers counting what the rows judged clear
    before it take: the provider's and the client's time, one more future booking of the
    client with the provider, one more session on its day and in its week (a seat joining
    a session that exists adds none), a seat of its session (the write picks the lowest free
    number). A refused row takes nothing, so a skip never puts a later one over a limit."""
    earlier: list[tuple[Claim, bool]] = []  # clear rows, and whether each makes a new session
    taken: dict[uuid.UUID, frozenset[int]] = {}
    outcomes: list[Refusal | None] = []
    for row, answers in zip(rows, judged, strict=True):
        claim = row.claim
        seat = claim.session_key if claim.capacity is not None else None
        if seat is not None:
            answers = replace(answers, taken_seats=taken.get(seat, answers.taken_seats))
        answers = _counting(claim, answers, earlier)
        outcome = verdict(claim, answers)
        if outcome is None:
            if seat is not None:
                seat_no = free_seat(answers.taken_seats)
                row.appointment["seat_no"] = seat_no
                taken[seat] = answers.taken_seats | {seat_no}
            earlier.append((claim, seat is None or not answers.taken_seats))
        outcomes.append(outcome)
    return outcomes


def _within(window: Interval | None, at: datetime) -> bool:
    return window is not None and window.start_at <= at < window.end_at


def _counting(claim: Claim, answers: Answers, earlier: list[tuple[Claim, bool]]) -> Answers:
    """``answers`` with what the clear rows ``earlier`` (of one batch) add to them."""
    provider_busy, client_busy = answers.provider_busy, answers.client_busy
    client_count, day_count, week_count = (
        answers.client_count,
        answers.day_count,
        answers.week_count,
    )
    blocked = Interval(claim.blocked_start_at, claim.blocked_end_at)
    time = Interval(claim.start_at, claim.end_at)
    for other, new_session in earlier:
        if other.provider_id == claim.provider_id:
            same_session = claim.session_key is not None and other.session_key == claim.session_key
            if not same_session and blocked.overlaps(
                Interval(other.blocked_start_at, other.blocked_end_at)
            ):
                provider_busy = True
            if other.client_key == claim.client_key and other.start_at > claim.now:
                client_count += 1
            if new_session and _within(claim.day, other.start_at):
                day_count += 1
            if new_session and _within(claim.week, other.start_at):
                week_count += 1
        if other.client_key == claim.client_key and time.overlaps(
            Interval(other.start_at, other.end_at)
        ):
            client_busy = True
    return replace(
        answers,
        provider_busy=provider_busy,
        client_busy=client_busy,
        client_count=client_count,
        day_count=day_count,
        week_count=week_count,
    )


async def check_moves(session: AsyncSession, claims: list[Claim]) -> list[Refusal | int]:
    """Bookings' new times (each claim's ``exclude_id``), judged together under one set of
    locks in the session's transaction: for each, the refusal, or the seat number the
    appointment takes there (1 when not a seat); the caller then updates the appointments
    in it. None counts against another: the claims are of different providers and clients
    (the members' rows of a collective booking), or moves that cannot meet
    (``reschedule._apart``)."""
    await lock(session, claims)
    judged = await judge(session, claims, lines=True)
    # Under the providers' locks nobody joins their lines until the commit: what the
    # judgment found of them holds for the hand-on of the times the moves free.
    pairs = list(zip(claims, judged, strict=True))
    lines = {claim.provider_id: answers.anyone_waits is not False for claim, answers in pairs}
    waitlist_repository.note_lines(session, lines)
    return [_move_verdict(claim, answers) for claim, answers in pairs]


async def lock(session: AsyncSession, claims: list[Claim]) -> None:
    """The write's first step alone: the locks of the claims' providers and clients, and
    their expired holds released (a caller that must read a row after the locks and before
    the judgment: ``booking.holds``, and the queue's round robin, which counts bookings)."""
    await _lock_and_release(session, claims)


async def check_locked(session: AsyncSession, claim: Claim) -> Refusal | int:
    """A booking's new time, as ``check_moves`` judges one, once its locks are taken
    (``lock``)."""
    (answers,) = await judge(session, [claim])
    return _move_verdict(claim, answers)


def _move_verdict(claim: Claim, answers: Answers) -> Refusal | int:
    outcome = verdict(claim, answers)
    if outcome is not None:
        return outcome
    return free_seat(answers.taken_seats) if claim.capacity is not None else 1


def _seats(claims: list[Claim]) -> bool:
    return any(claim.capacity is not None for claim in claims)


def _holds(claims: list[Claim]) -> bool:
    return any(claim.hold_cap is not None for claim in claims)


async def _lock_and_release(session: AsyncSession, claims: list[Claim]) -> None:
    """The write's first step: the locks, and the release of expired holds (and unverified
    guest bookings), before anything else is judged (``lock_and_release``)."""
    await lock_and_release(
        session,
        {claim.provider_id for claim in claims},
        {claim.client_key for claim in claims},
        now=max(claim.now for claim in claims),
    )


async def lock_and_release(
    session: AsyncSession, providers: set[uuid.UUID], clients: set[str], *, now: datetime
) -> None:
    """The locks of these providers and clients, and the release of their expired holds
    (and unverified guest bookings), whose time goes at once to whoever waits for it
    (``RELEASED_KEY``): a place freed goes to the first in line, as a cancelled one does.
    Only the locked providers' releases are handed on (a client's own lapsed hold with
    another provider is released too, but that provider is not locked). Taken here by a
    batch for every write it makes, a write's own first step asks nothing
    (``repository.lock_and_release``)."""
    released = await repository.lock_and_release(session, providers, clients, now=now)
    freed = [item for item in released if item.provider_id in providers]
    hand_on: HandOn | None = session.info.get(RELEASED_KEY)
    if freed and hand_on is not None:
        await hand_on(session, freed, now=now)


# The session's ``info`` key of what hands released time to waiters: ``booking.waitlist``'s
# ``hand_on_released``, which ``main.create_app`` puts there (the waitlist writes through
# this module, so this module cannot import it).
RELEASED_KEY = "slotwise.released"


class HandOn(Protocol):
    async def __call__(
        self, session: AsyncSession, released: list[repository.Released], *, now: datetime
    ) -> None: ...


# The claim's fields as the statements receive them, and their types.
_INSTANT: TypeEngine[Any] = DateTime(timezone=True)
_CLAIM_FIELDS: list[tuple[str, TypeEngine[Any]]] = [
    ("provider_id", Uuid()),
    ("client_key", Text()),
    ("start_at", _INSTANT),
    ("end_at", _INSTANT),
    ("blocked_start_at", _INSTANT),
    ("blocked_end_at", _INSTANT),
    ("earliest_at", _INSTANT),  # blocked_start_at - LONGEST_BLOCK: an index range's start
    ("rules_version", BigInteger()),
    ("now", _INSTANT),
    ("client_cap", Integer()),
    ("day_start_at", _INSTANT),
    ("day_end_at", _INSTANT),
    ("day_cap", Integer()),
    ("week_start_at", _INSTANT),
    ("week_end_at", _INSTANT),
    ("week_cap", Integer()),
    ("exclude_id", Uuid()),
]
# What a seat's claim adds (only in the judgments of batches that hold a seat).
_SEAT_FIELDS: list[tuple[str, TypeEngine[Any]]] = [
    ("session_key", Uuid()),
    ("capacity", Integer()),
]
# What a hold's claim adds (only in the judgments of batches that hold a hold).
_HOLD_FIELDS: list[tuple[str, TypeEngine[Any]]] = [
    ("holder", Text()),
    ("hold_cap", Integer()),
]


def _claim_values(claim: Claim) -> dict[str, Any]:
    return {
        "provider_id": claim.provider_id,
        "client_key": claim.client_key,
        "start_at": claim.start_at,
        "end_at": claim.end_at,
        "blocked_start_at": claim.blocked_start_at,
        "blocked_end_at": claim.blocked_end_at,
        "earliest_at": claim.blocked_start_at - repository.LONGEST_BLOCK,
        "rules_version": claim.rules_version,
        "now": claim.now,
        "client_cap": claim.client_cap,
        "day_start_at": claim.day.start_at if claim.day else None,
        "day_end_at": claim.day.end_at if claim.day else None,
        "day_cap": claim.day_cap,
        "week_start_at": claim.week.start_at if claim.week else None,
        "week_end_at": claim.week.end_at if claim.week else None,
        "week_cap": claim.week_cap,
        "exclude_id": claim.exclude_id,
    }


def _seat_values(claim: Claim) -> dict[str, Any]:
    return {"session_key": claim.session_key, "capacity": claim.capacity}


def _hold_values(claim: Claim) -> dict[str, Any]:
    return {"holder": claim.holder, "hold_cap": claim.hold_cap}


class _Fields:
    """A claim's fields by name: ``prefix + name`` in a set of columns (the unnested
    claims), or bound parameters named ``name + suffix`` (one claim of a padded query)."""

    def __init__(self, columns: Any = None, *, prefix: str = "", suffix: str = "") -> None:
        self._columns, self._prefix, self._suffix = columns, prefix, suffix

    def __getattr__(self, name: str) -> Any:
        if self._columns is not None:
            return self._columns[self._prefix + name]
        return bindparam(name + self._suffix)


def _answers(
    asked: Any,
    *,
    ranges: bool = False,
    seats: bool = False,
    holds: bool = False,
    lines: bool = False,
) -> list[ColumnElement[Any]]:
    """The judgment of one claim, as labelled columns over its fields. A count is computed
    only where its cap is asked for. The day's and week's counts are of sessions (a group
    session's seats count once).

    ``seats``: the claims may be seats of group sessions (fields ``session_key`` and
    ``capacity``, null for a claim that is not): the provider is busy only with rows of other
    sessions, a day or week counts the other sessions, and the seats taken in the claim's
    session are read (``taken_seats``).

    ``holds``: the claims may be holds (fields ``holder`` and ``hold_cap``, null for a
    claim that is not): the holder's live holds with the provider are counted
    (``hold_count``).

    ``lines``: whether anyone is in the claim's provider's line (``anyone_waits``).

    ``ranges`` (PostgreSQL): the overlaps also as ``tstzrange && tstzrange``, the very
    expressions of the exclusion constraints, so that their GiST indexes (which the planner
    picks, being partial on the statuses that take time) search by time too, instead of
    reading every appointment of the provider or client (``repository.blocking``). The
    comparisons say the same (half-open ranges), for SQLite and for the btree indexes."""
    active = repository.takes_time()
    others = or_(asked.exclude_id.is_(None), Appointment.id != asked.exclude_id)
    client_overlap: list[ColumnElement[bool]] = []
    if ranges:
        client_overlap.append(
            _range(Appointment.start_at, Appointment.end_at).op("&&")(
                _range(asked.start_at, asked.end_at)
            )
        )
    other_sessions: list[ColumnElement[bool]] = []
    if seats:
        other_sessions.append(
            or_(asked.session_key.is_(None), Appointment.session_key != asked.session_key)
        )
    provider_busy = exists().where(
        *repository.blocking(
            asked.provider_id,
            asked.blocked_start_at,
            asked.blocked_end_at,
            asked.earliest_at,
            ranges=ranges,
        ),
        others,
        *other_sessions,
    )
    client_busy = exists().where(
        Appointment.client_key == asked.client_key,
        # A range of the (client_key, start_at) index: nothing starts further back than the
        # longest block and still overlaps (without it, all the client's past is read).
        Appointment.start_at >= asked.earliest_at,
        Appointment.start_at < asked.end_at,
        Appointment.end_at > asked.start_at,
        *client_overlap,
        active,
        others,
    )
    blocked = exists().where(ClientStanding.email == asked.client_key, ClientStanding.blocked)

    def counted(
        cap: Any, first_at: Any, last_at: Any, *where: ColumnElement[bool], sessions: bool = False
    ) -> ColumnElement[Any]:
        """The provider's bookings that take time and start in [first_at, last_at) (None:
        no end); ``sessions``: the sessions they are seats of, the claim's own aside."""
        within = [Appointment.start_at >= first_at]
        if last_at is not None:
            within.append(Appointment.start_at < last_at)
        if ranges:  # what starts within the window blocks time within it: an index range
            blocked = _range(Appointment.blocked_start_at, Appointment.blocked_end_at)
            within.append(
                blocked.op("&&")(_range(first_at, null() if last_at is None else last_at))
            )
        counting = func.count(Appointment.session_key.distinct()) if sessions else func.count()
        count = select(counting).where(
            Appointment.provider_id == asked.provider_id,
            active,
            others,
            *within,
            *where,
            *(other_sessions if sessions else ()),
        )
        return case((cap.is_(None), 0), else_=count.scalar_subquery())

    version = select(Provider.rules_version).where(Provider.id == asked.provider_id)
    taken_seats: list[ColumnElement[Any]] = []
    if seats:
        # The separator as a constant, not the str the stubs ask for: a str is bound as a
        # parameter rendered anew at each execution (tests/unit/test_statement_shapes.py).
        listed = func.aggregate_strings(cast(Appointment.seat_no, Text()), _COMMA)  # type: ignore[arg-type]
        numbers = select(listed).where(Appointment.session_key == asked.session_key, active, others)
        taken_seats.append(
            case((asked.capacity.is_(None), null()), else_=numbers.scalar_subquery()).label(
                "taken_seats"
            )
        )
    hold_count: list[ColumnElement[Any]] = []
    if holds:
        held = select(func.count()).where(
            Appointment.provider_id == asked.provider_id,
            Appointment.held_by == asked.holder,
            Appointment.status == repository.HOLD,
            Appointment.hold_until > asked.now,
        )
        hold_count.append(
            case((asked.hold_cap.is_(None), 0), else_=held.scalar_subquery()).label("hold_count")
        )
    return [
        version.scalar_subquery().label("current_version"),
        blocked.label("client_blocked"),
        provider_busy.label("provider_busy"),
        client_busy.label("client_busy"),
        counted(
            asked.client_cap,
            asked.now,
            None,
            Appointment.client_key == asked.client_key,
            Appointment.start_at > asked.now,
        ).label("client_count"),
        counted(asked.day_cap, asked.day_start_at, asked.day_end_at, sessions=True).label(
            "day_count"
        ),
        counted(asked.week_cap, asked.week_start_at, asked.week_end_at, sessions=True).label(
            "week_count"
        ),
        *taken_seats,
        *hold_count,
        *(
            [waitlist_repository.anyone_waits(asked.provider_id).label("anyone_waits")]
            if lines
            else []
        ),
    ]


_range = repository.time_range
_COMMA: ColumnElement[Any] = literal_column("','")


def _read(found: Any, suffix: str = "") -> Answers:
    seats = found.get("taken_seats" + suffix)
    return Answers(
        rules_version=found["current_version" + suffix],
        client_blocked=bool(found["client_blocked" + suffix]),
        provider_busy=bool(found["provider_busy" + suffix]),
        client_busy=bool(found["client_busy" + suffix]),
        client_count=int(found["client_count" + suffix] or 0),
        day_count=int(found["day_count" + suffix] or 0),
        week_count=int(found["week_count" + suffix] or 0),
        taken_seats=frozenset(int(n) for n in seats.split(",")) if seats else frozenset(),
        hold_count=int(found.get("hold_count" + suffix) or 0),
        anyone_waits=_maybe_bool(found.get("anyone_waits" + suffix)),
    )


def _maybe_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


async def judge(
    session: AsyncSession, claims: list[Claim], *, lines: bool = False
) -> list[Answers]:
    """The judgment of each claim, in one query (read after the locks); ``lines``: also
    whether anyone is in each claim's provider's line (``Answers.anyone_waits``)."""
    connection = await session.connection()
    seats, holds = _seats(claims), _holds(claims)

    def values_of(claim: Claim) -> dict[str, Any]:
        values = _claim_values(claim)
        if seats:
            values.update(_seat_values(claim))
        if holds:
            values.update(_hold_values(claim))
        return values

    if connection.dialect.name == "postgresql":
        values = _arrays([values_of(claim) for claim in claims], "c_")
        result = await connection.execute(_judged_unnested(seats, holds, lines), values)
        return [_read(row._mapping) for row in result.all()]
    asking = padded(claims)
    values = {}
    for i, claim in enumerate(asking):
        values.update({f"{name}_{i}": value for name, value in values_of(claim).items()})
    statement = _judged_padded(len(asking), seats, holds, lines)
    row = (await connection.execute(statement, values)).one()
    return [_read(row._mapping, f"_{i}") for i in range(len(claims))]


@cache
def _judged_padded(
    count: int, seats: bool = False, holds: bool = False, lines: bool = False
) -> Select[Any]:
    """The judgments of ``count`` claims as one row, their columns suffixed ``_<i>``
    (built once per padded count)."""
    columns: list[ColumnElement[Any]] = []
    for i in range(count):
        asked = _Fields(suffix=f"_{i}")
        for answer in _answers(asked, seats=seats, holds=holds, lines=lines):
            columns.append(answer.element.label(f"{answer.name}_{i}"))
    return select(*columns)


def _unnest(fields: list[tuple[str, TypeEngine[Any]]], name: str) -> Any:
    """Rows sent as one array parameter per field (its values already in their database
    form, as ``db.bulk`` sends them), read back with ``unnest ... WITH ORDINALITY``
    (column ``n``): one statement text however many rows."""
    arrays = (cast(bindparam(field), postgresql.ARRAY(kind)) for field, kind in fields)
    return (
        func.unnest(*arrays)
        .table_valued(*(column(field, kind) for field, kind in fields), with_ordinality="n")
        .render_derived(name=name)
    )


def _arrays(rows: list[dict[str, Any]], prefix: str) -> dict[str, list[Any]]:
    return {prefix + name: [row[name] for row in rows] for name in rows[0]}


_CLAIMS = [(f"c_{name}", kind) for name, kind in _CLAIM_FIELDS]
_SEAT_CLAIMS = [(f"c_{name}", kind) for name, kind in _SEAT_FIELDS]
_HOLD_CLAIMS = [(f"c_{name}", kind) for name, kind in _HOLD_FIELDS]


@cache
def _judged_unnested(seats: bool = False, holds: bool = False, lines: bool = False) -> Select[Any]:
    fields = _CLAIMS + (_SEAT_CLAIMS if seats else []) + (_HOLD_CLAIMS if holds else [])
    asked = _unnest(fields, "asked")
    answers = _answers(
        _Fields(asked.c, prefix="c_"), ranges=True, seats=seats, holds=holds, lines=lines
    )
    return select(*answers).select_from(asked).order_by(asked.c.n)


async def _judge_and_insert(session: AsyncSession, rows: list[Row]) -> list[Refusal | None]:
    """PostgreSQL: one statement judges every claim and inserts those found clear, with
    their history and messages; a row per claim, with its answers, whether it was
    written, and the webhook events its provider's subscribers want (``queue.wanted_by``).
    """
    connection = await session.connection()
    dialect = connection.dialect
    events = [event for row in rows for event in row.events]
    messages = [message for row in rows for message in row.messages]
    statement = _judge_and_insert_statement(
        tuple(rows[0].appointment),
        tuple(events[0]) if events else (),
        tuple(messages[0]) if messages else (),
    )
    values = _arrays([_claim_values(row.claim) for row in rows], "c_")
    appointments = [row.appointment for row in rows]
    values.update(
        unnested(_APPOINTMENTS.name, tuple(appointments[0]), "a").values(dialect, appointments)
    )
    if events:
        values.update(unnested(_EVENTS.name, tuple(events[0]), "e").values(dialect, events))
    if messages:
        values.update(unnested(_MESSAGES.name, tuple(messages[0]), "m").values(dialect, messages))
    result = await connection.execute(statement, values)
    outcomes: list[Refusal | None] = []
    wanted: dict[uuid.UUID, list[str] | None] = {}
    for row, found in zip(rows, result.all(), strict=True):
        outcome = verdict(row.claim, _read(found._mapping))
        if outcome is None and not found._mapping["written"] and not row.probe:
            # Judged clear, refused by an exclusion constraint: a writer without the locks.
            outcome = Refusal(Reason.SLOT_UNAVAILABLE)
        outcomes.append(outcome)
        wanted[row.claim.provider_id] = found._mapping["wanted"]
    queue.know_wanted(session, wanted)  # their events are queued without asking again
    return outcomes


@cache
def _judge_and_insert_statement(
    appointment_keys: tuple[str, ...], event_keys: tuple[str, ...], message_keys: tuple[str, ...]
) -> Select[Any]:
    """The claims judged and those clear inserted, with their history and messages, as
    data-modifying CTEs (built once per shape of rows). The INSERT skips (ON CONFLICT DO
    NOTHING) a row an exclusion constraint refuses rather than failing them all."""
    appointment_fields = [
        (f"a_{key}", element_type(_APPOINTMENTS.columns[key])) for key in appointment_keys
    ]
    asked = _unnest(_CLAIMS + appointment_fields, "asked")
    judged = (
        select(
            asked.c.n,
            *(asked.c[name] for name, _ in _CLAIMS + appointment_fields),
            *_answers(_Fields(asked.c, prefix="c_"), ranges=True),
        )
        .select_from(asked)
        .cte("judged")
    )
    j = judged.c
    clear = and_(
        j.current_version == j.c_rules_version,
        not_(j.client_blocked),
        not_(j.provider_busy),
        not_(j.client_busy),
        or_(j.c_client_cap.is_(None), j.client_count < j.c_client_cap),
        or_(j.c_day_cap.is_(None), j.day_count < j.c_day_cap),
        or_(j.c_week_cap.is_(None), j.week_count < j.c_week_cap),
    )
    taken = (
        postgresql.insert(_APPOINTMENTS)
        .from_select(
            list(appointment_keys),
            select(*(j[f"a_{key}"] for key in appointment_keys))
            .where(clear, j.a_id.is_not(None))  # a probe's row has no id: judged only
            .order_by(j.n),
        )
        .on_conflict_do_nothing()
        .returning(_APPOINTMENTS.c.id)
        .cte("taken")
    )
    statement = select(
        j.n,
        *(j[name] for name in _ANSWERS),
        j.a_id.in_(select(taken.c.id)).label("written"),
        queue.wanted_by(j.c_provider_id).label("wanted"),  # who subscribes to its events
    ).order_by(j.n)
    for prefix, table, keys in (("e", _EVENTS, event_keys), ("m", _MESSAGES, message_keys)):
        if not keys:
            continue
        given = unnested(table.name, keys, prefix)
        part = given.insert(where=given.rows.c.appointment_id.in_(select(taken.c.id)))
        statement = statement.add_cte(part.cte(f"{prefix}_written"))
    return statement


_ANSWERS = (
    "current_version",
    "client_blocked",
    "provider_busy",
    "client_busy",
    "client_count",
    "day_count",
    "week_count",
)
