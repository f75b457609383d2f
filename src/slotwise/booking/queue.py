"""The booking queue: the bookings a worker receives together are decided and written
together, each still answered on its own.

A booking's own work is small; what it costs is the transaction around it (a connection,
BEGIN, the locks, COMMIT, and each statement's fixed cost through the driver). So each
worker has writers (two on PostgreSQL, one on SQLite): a booking request queues its job and
waits; a writer takes its share of the queued jobs (``_fair_share``) and, in one
transaction, looks up the callers (one query), decides each booking on the provider's
kept terms (``create.propose``), sets aside those that compete with an earlier one of the
batch (``scheduling.arrange``) and hands the rest to the one write (``write.take``), which
says of each what became of it (one whose very time the last write took or found taken
goes as a probe, its claim alone, and is written whole if found clear: ``_row``). While a
batch is written the next requests queue, and form the next batch; a lone request goes at
once.

Each job is answered by what became of it: a refusal (409, 422, 401) as soon as it is
known, a booking once it is committed. A booking that competes with an earlier one of the
batch waits for that one's fate (``scheduling.settle``): written, the later one's time is
taken (refused once the transaction commits); refused, the later one is refused alike where
the reason covers it; otherwise it is written in the batch's next round (up to ROUNDS
writes), then in the next batch. A job also goes back to the queue when refused on kept terms or
found stale (decided again on fresh terms), or in a batch the database refused as a whole
(a deadlock, a foreign key: each such job is then written in a batch of its own, so one
cannot fail another again).

A pooled booking (``booking.pools``: a round-robin team's, which any one of several
providers may take) goes the same way. Its candidates are read for the whole batch at once
(``Pools``) and it is decided on each one's terms; then each write of the batch first
takes the locks of every candidate, counts their bookings and gives it to one
(``_choose``: round robin's order, passing over a candidate an earlier booking of the
batch takes at that time), whose row goes to the write with the others, which judges it.
One whose candidate the write refused, or that waited on another booking, is chosen again
at the next write, on the judgment of every candidate.

A signed-in caller's cancellation (``cancel``: POST /appointments/{id}/cancel and its
aliases) is a job of the same batches. Its caller is looked up in the batch's one query;
the batch's cancellations are then made by ``lifecycle.cancel_each`` before its bookings are
written: their appointments (with the other rows of their collective team bookings) read
and locked in one statement, each decided by ``lifecycle.cancel``'s rules and written by its
write (history, messages, reminders withdrawn, webhook event, the freed time handed to the
waitlist). A booking of the batch may so take a time one of its cancellations frees. Each
cancellation is answered once the transaction commits, a refusal too (it may be an earlier
cancellation of the batch that refuses it); a refusal writes nothing and fails no other job.
A batch refused as a whole writes its cancellations alone, as its bookings.

A signed-in caller's reschedule (``move``: POST /appointments/{id}/reschedule) goes the same
way, after the batch's cancellations and before its bookings (``reschedule.move_each``):
read and locked in one statement with the batch's cancellations (``_lock_changes``, which
also takes, at once and in order, every provider's and client's lock the batch will take),
decided and judged by ``reschedule.plan`` (a refusal writes nothing of it), written by
``reschedule.carry_out``, answered once the transaction commits; several that cannot meet
are judged in one statement and written in one. In a batch that cancels or
moves appointments, a booking the write refuses is answered at the commit too: a change of
the batch may be why. (A guest's cancellation or reschedule, by its manage token, is a
request of its own.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.auth import callers
from slotwise.auth.tokens import InvalidToken, TokenClaims
from slotwise.booking import create, lifecycle, repository, reschedule, write
from slotwise.booking.create import Booked
from slotwise.booking.errors import TermsChanged, refused
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.models import Appointment
from slotwise.booking.pools import Pool, Pools
from slotwise.booking.schemas import AppointmentCreate, AppointmentRead, RescheduleRequest
from slotwise.booking.terms import ATTEMPTS, Known, TermsCache
from slotwise.db import Database
from slotwise.errors import AppError
from slotwise.scheduling import Clash, Interval, Placement, Proposal, Reason, Refusal, round_robin
from slotwise.scheduling.round_robin import Entrant
from slotwise.users.models import User
from slotwise.webhooks import queue as webhooks

if TYPE_CHECKING:
    from redis.asyncio import Redis

MAX_BATCH = 64
WRITERS = 2
COALESCE_SECONDS = 0.002  # the longest a writer waits for its share of the bookings
ROUNDS = 4  # writes a batch makes before leaving what still competes to the next batch

log = structlog.get_logger("slotwise.booking")


@dataclass(slots=True)
class _Job:
    claims: TokenClaims | None  # verified; the user is looked up in the batch
    data: AppointmentCreate | None  # the booking of one provider (None: a pooled one)
    now: datetime
    answer: asyncio.Future[Booked]
    pooled: Any = None  # a pooled booking as submitted: ``Pools`` reads its pool
    pool: Pool | None = None
    fresh: bool = False  # decide on terms read afresh (kept ones refused, or proved stale)
    decisions: int = 0  # how many times it was decided: bounded by terms.ATTEMPTS
    alone: bool = False  # written in a batch of its own


@dataclass(slots=True)
class _Cancel:
    """A signed-in caller's cancellation (``lifecycle.cancel_each``)."""

    claims: TokenClaims  # verified; the user is looked up in the batch
    appointment_id: uuid.UUID
    reason: str | None
    now: datetime
    answer: asyncio.Future[Appointment]
    alone: bool = False  # written in a batch of its own


@dataclass(slots=True)
class _Move:
    """A signed-in caller's reschedule (``reschedule.move_each``)."""

    claims: TokenClaims  # verified; the user is looked up in the batch
    appointment_id: uuid.UUID
    data: RescheduleRequest
    reminder_offsets: list[int]
    now: datetime
    answer: asyncio.Future[AppointmentRead]  # as moved: a later move may change the row
    alone: bool = False  # written in a batch of its own


_Queued = _Job | _Cancel | _Move
# A cancellation's or a reschedule's outcome: the appointment, or the refusal.
_Changed = tuple[_Cancel, Appointment | AppError] | tuple[_Move, AppointmentRead | AppError]


@dataclass(frozen=True, slots=True)
class _Option:
    """A booking decided on one provider's terms: the booking as theirs, the terms, and
    where it sits."""

    data: AppointmentCreate
    known: Known
    proposal: Proposal


@dataclass(slots=True)
class _Decided:
    job: _Job
    user: User | None
    option: _Option  # what the write is to take (a pooled booking's: the one chosen for it)
    # A pooled booking's: each candidate whose terms accept it, with their rank's terms.
    candidates: list[tuple[_Option, Entrant]] | None = None
    # A pooled booking whose choice the write refused, or that waited on another booking:
    # chosen again on the judgment of every candidate (``_choose``).
    judged: bool = False
    booked: Booked | None = None  # built once the write is to take it (``_booked``)
    # A probe of it (``_row``) found its time clear after all: written whole from now on.
    cleared: bool = False


class BookingQueue:
    """One per worker: ``submit`` queues a booking (``cancel``, a cancellation) for the next
    batch and waits for its answer."""

    def __init__(
        self,
        database: Database,
        terms: TermsCache,
        redis: Redis | None,
        *,
        max_batch: int = MAX_BATCH,
        writers: int | None = None,
        guests: GuestPolicy | None = None,
        pools: Pools | None = None,
    ) -> None:
        """``writers``: batches in flight at once (default: one on SQLite, whose write lock
        admits one anyway; several on PostgreSQL, so that while one batch waits on the
        database the worker checks the next). ``guests``: what guests' bookings are held to.
        ``pools``: who may take pooled bookings (``submit_pooled``)."""
        self.database = database
        self.terms = terms
        self.redis = redis
        self.guests = guests or GuestPolicy()
        self.pools = pools
        self.max_batch = max_batch
        self.writers = writers or (1 if database.is_sqlite else WRITERS)
        self._queue: list[_Queued] = []
        self._running: set[asyncio.Task[None]] = set()
        self._in_flight = 0  # jobs in the batches being written
        self._arrived = asyncio.Event()  # set when a job is queued
        # The providers' times the last write took or found taken (``_row``).
        self._taken_lately: set[_Time] = set()

    async def submit(
        self, *, claims: TokenClaims | None, data: AppointmentCreate, now: datetime
    ) -> Booked:
        """The booking, decided and written with those that arrive alongside; its refusal
        raised as the API's error."""
        return await self._queued(_Job(claims=claims, data=data, now=now, answer=_answer_of()))

    async def submit_pooled(
        self, *, claims: TokenClaims | None, request: object, now: datetime
    ) -> tuple[Pool, Booked]:
        """A pooled booking (``booking.pools``), ``request`` as ``Pools`` reads it: its pool,
        and the booking of the candidate round robin gave it to."""
        assert self.pools is not None, "the queue was given no pools"
        job = _Job(claims=claims, data=None, now=now, answer=_answer_of(), pooled=request)
        booked = await self._queued(job)
        assert job.pool is not None  # read before it was decided
        return job.pool, booked

    async def cancel(
        self, *, claims: TokenClaims, appointment_id: uuid.UUID, reason: str | None, now: datetime
    ) -> Appointment:
        """A signed-in caller's cancellation, decided and written with the bookings and
        cancellations that arrive alongside (``lifecycle.cancel_each``); its refusal raised
        as the API's error."""
        job = _Cancel(claims, appointment_id, reason, now, _answer_of())
        self._enqueue(job)
        return await job.answer

    async def move(
        self,
        *,
        claims: TokenClaims,
        appointment_id: uuid.UUID,
        data: RescheduleRequest,
        reminder_offsets: list[int],
        now: datetime,
    ) -> AppointmentRead:
        """A signed-in caller's reschedule, decided and written with the bookings,
        cancellations and reschedules that arrive alongside (``reschedule.move_each``); its
        refusal raised as the API's error."""
        job = _Move(claims, appointment_id, data, reminder_offsets, now, _answer_of())
        self._enqueue(job)
        return await job.answer

    async def _queued(self, job: _Job) -> Booked:
        self._enqueue(job)
        return await job.answer

    def _enqueue(self, job: _Queued) -> None:
        self._queue.append(job)
        self._arrived.set()
        self._start_writer()

    def _start_writer(self) -> None:
        if len(self._running) < self.writers:
            writer = asyncio.create_task(self._drain(), name="slotwise-booking-writer")
            self._running.add(writer)

    async def aclose(self) -> None:
        """Let the batches under way finish (their bookings commit and are answered)."""
        if self._running:
            await asyncio.shield(asyncio.gather(*self._running, return_exceptions=True))

    async def _drain(self) -> None:
        """Write batches while jobs are queued."""
        this = asyncio.current_task()
        try:
            answered = 0
            while self._queue:
                size = await self._fair_share(returning=answered)
                if size == 0:  # the other writer took them while this one waited
                    continue
                if self._queue[0].alone:
                    size = 1
                batch = self._queue[:size]
                del self._queue[:size]
                if self._queue:  # more than this writer's share: another writer takes it
                    self._start_writer()
                self._in_flight += len(batch)
                try:
                    await self._write(batch)
                except BaseException as exc:
                    _fail_all(batch, exc)
                    raise
                finally:
                    self._in_flight -= len(batch)
                answered = len(batch)
        except BaseException as exc:  # cancelled (shutdown) or a bug: nobody waits forever
            if not self._running - {this}:
                _fail_all(self._queue, exc)
                self._queue.clear()
            if not isinstance(exc, Exception):
                raise
            log.exception("booking_writer_failed")
        finally:
            # At once, not in a done callback: a job queued from now on starts a writer.
            self._running.discard(this)

    async def _fair_share(self, *, returning: int) -> int:
        """How many queued jobs to take: an even share, among the writers, of the bookings
        in play (queued, being written, and those this writer just answered, whose clients
        are likely to book again), waiting up to COALESCE_SECONDS for it to arrive.

        Taking whatever is queued instead lets the batches fall into step with clients
        that book one after another: a writer that finds a lone job writes a batch of one
        (a whole transaction for one booking) while the other writes all the rest, and the
        two keep those sizes. Shares keep them even (docs/benchmarks.md). A lone booking
        never waits: it is its own share."""
        in_play = len(self._queue) + self._in_flight + returning
        share = min(self.max_batch, -(-in_play // self.writers))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COALESCE_SECONDS
        while len(self._queue) < share and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                break
        return min(len(self._queue), share)

    async def _write(self, batch: list[_Queued]) -> None:
        jobs = [job for job in batch if not job.answer.done()]  # cancelled while queued
        later: list[_Queued] = []
        changed: list[_Changed] = []
        try:
            async with self.database.transaction(writes=True) as session:
                written, taken = await self._decide_and_write(session, jobs, later, changed)
        except (DBAPIError, AppError) as exc:
            # Refused as a whole (a deadlock, a foreign key), or a write raised a refusal of
            # its own (the decisions answer theirs): each job again, in a batch of its own.
            if len(jobs) == 1:
                _fail_all(jobs, exc)
                return
            written, taken, changed, later = [], [], [], list(jobs)
            for job in later:
                job.alone = True
        except Exception as exc:  # the database failed: every job still open hears of it
            _fail_all(jobs, exc)
            return
        for decided in written:
            assert decided.booked is not None  # the write took it
            _answer(decided.job, decided.booked)
        for job, refusal in taken:  # their time was taken by a booking now committed
            _refuse(job, refused(refusal))
        for change, outcome in changed:  # answered once committed, refusals too: an
            # earlier change of the batch may be why (``lifecycle.cancel_each``)
            if isinstance(outcome, AppError):
                _refuse(change, outcome)
            elif not change.answer.done():
                change.answer.set_result(outcome)  # type: ignore[arg-type]  # as _Changed pairs them
        self._requeue(later)

    def _requeue(self, jobs: list[_Queued]) -> None:
        """Jobs whose answer the next batch gives: ahead of those queued since."""
        jobs = [job for job in jobs if not job.answer.done()]
        if jobs:
            self._queue[:0] = jobs
            self._arrived.set()
            self._start_writer()

    async def _decide_and_write(
        self,
        session: AsyncSession,
        jobs: list[_Queued],
        later: list[_Queued],
        changed: list[_Changed],
    ) -> tuple[list[_Decided], list[tuple[_Job, Refusal]]]:
        """The callers, the decisions, the cancellations and reschedules (``changed``: what
        became of each), the write. Returns the jobs written and those whose time a booking
        written with them took (both answered once the transaction commits); refused
        bookings are answered at once (at the commit in a batch that cancels or moves
        appointments), and jobs to decide or write again put in ``later``.

        The cancellations are written first, then the reschedules, then the bookings: a
        booking of the time one frees finds it free (unless the waitlist's first in line
        was given it), and one of the time a reschedule takes finds it taken, as if they
        had come first."""
        signed_in = [job.claims for job in jobs if job.claims is not None]
        users = iter(await callers.users_for_claims(session, self.redis, signed_in))
        asking: list[tuple[_Job, User | None]] = []
        cancelling: list[tuple[_Cancel, User]] = []
        moving: list[tuple[_Move, User]] = []
        for job in jobs:
            user = next(users) if job.claims is not None else None
            if isinstance(user, InvalidToken):
                _refuse(job, user)
            elif isinstance(job, _Job):
                asking.append((job, user))
            else:
                assert user is not None  # a cancellation or reschedule is a signed-in caller's
                if isinstance(job, _Cancel):
                    cancelling.append((job, user))
                else:
                    moving.append((job, user))
        await self._read_pools(session, [job for job, _user in asking])
        decided: list[_Decided] = []
        for job, user in asking:
            if job.answer.done():  # its pool's read refused it
                continue
            if found := await self._decide(session, job, user, later):
                decided.append(found)
        locked = await _lock_changes(session, cancelling, moving, decided)
        providers = {one.appointment.provider_id for one in locked.values()}
        if len(providers) > 1:  # who subscribes to their webhooks: one question, not one each
            await webhooks.ask_wanted(session, providers)
        if cancelling:
            asked = [
                lifecycle.Cancellation(user, job.appointment_id, job.reason, job.now)
                for job, user in cancelling
            ]
            outcomes = await lifecycle.cancel_each(session, asked, locked)
            changed.extend(zip((job for job, _ in cancelling), outcomes, strict=True))
        if moving:
            moves = [
                reschedule.Move(user, job.appointment_id, job.data, job.reminder_offsets, job.now)
                for job, user in moving
            ]
            answers = await reschedule.move_each(session, moves, locked, kept_terms=self.terms)
            changed.extend(zip((job for job, _ in moving), answers, strict=True))
        # A booking the write refuses may be refused for a change of this batch (a time a
        # reschedule took, or a waiter was given): answered once that change is committed.
        at_commit = bool(cancelling or moving)
        written: list[_Decided] = []
        taken: list[tuple[_Job, Refusal]] = []
        pending = decided
        for n in range(ROUNDS):
            last = n == ROUNDS - 1  # no probe then: one found clear would leave the batch
            pending = await self._round(
                session, pending, written, taken, later, at_commit, probing=not last
            )
            if not pending:
                break
        later.extend(found.job for found in pending)  # the next batch takes them up
        return written, taken

    async def _round(
        self,
        session: AsyncSession,
        decided: list[_Decided],
        written: list[_Decided],
        taken: list[tuple[_Job, Refusal]],
        later: list[_Queued],
        at_commit: bool,
        *,
        probing: bool,
    ) -> list[_Decided]:
        """One write of the bookings that do not compete (``scheduling.arrange``), pooled
        ones given a candidate first (``_choose``); those that waited on one are settled by
        its fate (``scheduling.settle``) where that decides them (a pooled one is chosen
        again at the next write instead). Returns those still to write, a probe found clear
        first: it goes before the others at the next write, as it did at this one.
        ``at_commit``: refusals are answered once the transaction commits (``taken``), not
        at once. ``probing``: a booking of a time just taken may go as a probe (``_row``)."""
        still: list[_Decided] = []
        locked = any(found.candidates for found in decided)
        if locked:
            decided, still = await self._choose(session, decided, taken, later)
        placed = scheduling.arrange([found.option.proposal for found in decided])
        admitted = [index for index, waiting in enumerate(placed) if waiting is None]
        rows = [self._row(session, decided[i], probing) for i in admitted]
        judged = await write.take(session, rows, locked=locked)
        if rows:
            self._taken_lately = _taken_by(rows, judged)
        outcomes = dict(zip(admitted, judged, strict=True))
        cleared = {i for i, row in zip(admitted, rows, strict=True) if row.probe}
        cleared.intersection_update(i for i, outcome in outcomes.items() if outcome is None)
        ahead: list[_Decided] = []  # before any booking that waits at this write
        for index, outcome in outcomes.items():
            found = decided[index]
            if index in cleared:  # its time is free after all: written at the next write
                found.cleared = True
                ahead.append(found)
            elif outcome is None:
                written.append(found)
            elif outcome.reason is Reason.TERMS_CHANGED:
                self._again(found.job, later)
            elif found.candidates:  # another candidate may be free: the next write tells
                found.judged = True
                still.append(found)
            elif at_commit:
                taken.append((found.job, outcome))
            else:
                _refuse(found.job, refused(outcome))
        for found, waiting in zip(decided, placed, strict=True):
            if waiting is None:
                continue
            blocker = decided[waiting.blocker]
            outcome = outcomes[waiting.blocker]
            if found.candidates:  # pooled: chosen again, on every candidate's judgment
                found.judged = True
                still.append(found)
                continue
            if waiting.blocker in cleared or (
                outcome is not None and outcome.reason is Reason.TERMS_CHANGED
            ):
                still.append(found)
                continue
            refusal = scheduling.settle(found.option.proposal, blocker.option.proposal, outcome)
            if refusal is None:
                still.append(found)
            elif outcome is None or at_commit:  # answered at the commit: its time went
                taken.append((found.job, refusal))  # to a booking, or a change made it so
            else:
                _refuse(found.job, refused(refusal))
        return ahead + still

    async def _decide(
        self, session: AsyncSession, job: _Job, user: User | None, later: list[_Queued]
    ) -> _Decided | None:
        """The booking decided on the provider's terms (a pooled one: on each candidate's);
        None if the job was answered or put in ``later`` to be decided again on fresh
        terms."""
        job.decisions += 1
        try:
            if job.pool is not None:
                return await self._decide_pooled(session, job, job.pool, user)
            assert job.data is not None  # not pooled: one provider's
            client_key = create.check_caller(user, job.data)
            known, proposal, kept = await self._propose(
                session, job, job.data, user, client_key, fresh=job.fresh
            )
        except AppError as refusal:
            _refuse(job, refusal)
            return None
        if isinstance(proposal, Refusal):
            if kept:  # kept terms may be stale: a refusal is given on fresh ones only
                self._again(job, later)
            else:
                _refuse(job, refused(proposal))
            return None
        return _Decided(job=job, user=user, option=_Option(job.data, known, proposal))

    async def _decide_pooled(
        self, session: AsyncSession, job: _Job, pool: Pool, user: User | None
    ) -> _Decided | None:
        """A pooled booking decided on each candidate's terms: a candidate's refusal on
        kept terms is confirmed on fresh ones at once (the others go on meanwhile); refused
        by every candidate, the first one's refusal answers it."""
        client_key = create.check_caller(user, pool.candidates[0].asked)
        candidates: list[tuple[_Option, Entrant]] = []
        refusals: list[Refusal] = []
        for candidate in pool.candidates:
            asked = candidate.asked
            known, proposal, kept = await self._propose(
                session, job, asked, user, client_key, fresh=job.fresh, for_team=True
            )
            if isinstance(proposal, Refusal) and kept:
                known, proposal, kept = await self._propose(
                    session, job, asked, user, client_key, fresh=True, for_team=True
                )
            if isinstance(proposal, Refusal):
                refusals.append(proposal)
            else:
                candidates.append((_Option(asked, known, proposal), candidate.entrant))
        if not candidates:
            _refuse(job, refused(refusals[0]))
            return None
        return _Decided(job=job, user=user, option=candidates[0][0], candidates=candidates)

    async def _propose(
        self,
        session: AsyncSession,
        job: _Job,
        data: AppointmentCreate,
        user: User | None,
        client_key: str,
        *,
        fresh: bool,
        for_team: bool = False,
    ) -> tuple[Known, Proposal | Refusal, bool]:
        """The booking decided on the terms of ``data``'s provider, those terms, and
        whether they were kept (True) or read just now."""
        known, kept = await self.terms.get(session, data.provider_id, now=job.now, fresh=fresh)
        proposal = create.propose(
            known.terms, user=user, data=data, client_key=client_key, now=job.now, for_team=for_team
        )
        return known, proposal, kept

    async def _read_pools(self, session: AsyncSession, jobs: list[_Job]) -> None:
        """The pools of the batch's pooled bookings not yet read, in one call; a booking
        its pool's read refuses is answered."""
        unread = [job for job in jobs if job.pooled is not None and job.pool is None]
        if not unread:
            return
        assert self.pools is not None
        found = await self.pools(session, [job.pooled for job in unread])
        for job, pool in zip(unread, found, strict=True):
            if isinstance(pool, Exception):
                _refuse(job, pool)
            else:
                job.pool = pool

    async def _choose(
        self,
        session: AsyncSession,
        decided: list[_Decided],
        taken: list[tuple[_Job, Refusal]],
        later: list[_Queued],
    ) -> tuple[list[_Decided], list[_Decided]]:
        """Round robin's choice for each pooled booking of this write (``booking.pools``).
        Under the locks of every booking's provider and client (every candidate's), each
        candidate's bookings in the period; then, in the batch's order,
        ``round_robin.choose`` for each pooled booking, a candidate chosen counting one more
        booking, and a time taken by a booking before it (chosen or not pooled) passed over.

        A booking's first choice is made on the counts alone: usually every candidate is
        free, and the write judges the one chosen. One the write refused, or that waited,
        is chosen on the write's judgment of every candidate (``judged``), in one query for
        all such; none clear, it is refused with the first one's reason.

        Returns the bookings for the write, each pooled one with its candidate, and those
        that wait for the write's outcome. One refused is answered once the transaction
        commits (``taken``: the judgment counts what the batch wrote before); one judged on
        stale terms goes ``later``."""
        offered = [(found, option) for found in decided for option, _ in found.candidates or ()]
        claims = [self._claim(found, option) for found, option in offered]
        alone = [self._claim(found, found.option) for found in decided if not found.candidates]
        await write.lock(session, claims + alone)
        # The judgment of the candidates of those to be ``judged``; the others' are unknown
        # (None: as if clear), and the write judges the one chosen.
        to_judge = [
            (option, claim)
            for (found, option), claim in zip(offered, claims, strict=True)
            if found.judged
        ]
        judged = await write.judge(session, [claim for _, claim in to_judge]) if to_judge else []
        verdicts = {
            id(option): write.verdict(claim, answers)
            for (option, claim), answers in zip(to_judge, judged, strict=True)
        }
        counted = {id(option): _counted(option) for _, option in offered}
        counts = await repository.booked_counts(
            session,
            [(option.known.terms.provider_id, *counted[id(option)]) for _, option in offered],
        )
        chosen: Counter[tuple[uuid.UUID | None, Interval]] = Counter()
        going: list[_Decided] = []
        waiting: list[_Decided] = []
        placed: list[Proposal] = []  # what the bookings before take, in the batch's order
        for found in decided:
            if not found.candidates:
                going.append(found)
                placed.append(found.option.proposal)
                continue
            options = [option for option, _ in found.candidates]
            keys = [counted[id(option)] for option in options]
            choice = round_robin.choose(
                [entrant for _, entrant in found.candidates],
                [counts.get(key, 0) + chosen[key] for key in keys],
                [verdicts.get(id(option)) for option in options],
                [_taken(option.proposal, placed) for option in options],
            )
            if choice is None:
                found.judged = True
                waiting.append(found)
            elif isinstance(choice, Refusal):
                if choice.reason is Reason.TERMS_CHANGED:
                    self._again(found.job, later)
                else:
                    taken.append((found.job, choice))
            else:
                found.option, found.booked = options[choice], None
                chosen[keys[choice]] += 1
                going.append(found)
                placed.append(found.option.proposal)
        return going, waiting

    def _claim(self, found: _Decided, option: _Option) -> write.Claim:
        guest = found.user is None
        return create.claim_of(option.proposal, guest=guest, now=found.job.now, guests=self.guests)

    def _row(self, session: AsyncSession, found: _Decided, probing: bool) -> write.Row:
        """What the write takes of an admitted booking: its rows, or only its claim (a
        probe) when the last write took or found taken the provider's very time, so that
        a burst for one slot does not build the rows of bookings the write refuses. The
        database judges a probe as any row; found clear, it is written whole next, ahead
        of the bookings that waited. Never a pooled booking's or a seat's."""
        proposal = found.option.proposal
        if (
            probing
            and not found.cleared
            and found.candidates is None
            and proposal.placement.session_key is None
            and _time_of(proposal.terms.provider_id, proposal.placement) in self._taken_lately
        ):
            return write.probe(self._claim(found, found.option))
        return create.row_of(session, self._booked(found), proposal, self.guests)

    def _booked(self, found: _Decided) -> Booked:
        """The booking's rows, built when the write is to take it: most of those that
        wait on another of their batch are settled by its fate, and never written."""
        if found.booked is None:
            option = found.option
            found.booked = create.new_booking(
                option.known,
                option.proposal,
                user=found.user,
                data=option.data,
                now=found.job.now,
                guests=self.guests,
            )
        return found.booked

    @staticmethod
    def _again(job: _Job, later: list[_Queued]) -> None:
        """Decide the job again, on fresh terms, in the next batch (TermsChanged after
        ATTEMPTS decisions on terms that kept changing)."""
        if job.decisions >= ATTEMPTS:
            _refuse(job, TermsChanged())
            return
        job.fresh = True
        later.append(job)


async def _lock_changes(
    session: AsyncSession,
    cancelling: list[tuple[_Cancel, User]],
    moving: list[tuple[_Move, User]],
    decided: list[_Decided],
) -> dict[uuid.UUID, repository.Found]:
    """The appointments the batch cancels and moves, with the other rows of their
    collective team bookings, read and locked in one statement (in the order of their ids);
    then, when more than one lock is in play, every lock the batch takes as it goes, all at
    once in the order every write takes them (``repository.lock_in_order``): the providers
    of those appointments and of the batch's bookings (every candidate's), and the clients
    of the moved rows and of the bookings. So no cancellation's hand-on, reschedule's
    judgment or booking's write waits, holding one of these locks, for another that a
    writer holding that one waits for. (A waiter given a freed time is locked when the
    hand-on books them: not known before.) A batch that moves or books takes them as its
    writes' first step (``write.lock_and_release``: the expired holds of those providers
    and clients released, their time handed to waiters, before the batch's changes), so
    that each write after it asks nothing; not where that release would take a row the
    batch changes (``repository.lapsed``). Nothing is read or locked for a batch that
    changes no appointment."""
    if not cancelling and not moving:
        return {}
    cancelled_ids = {job.appointment_id for job, _ in cancelling}
    moved_ids = {job.appointment_id for job, _ in moving}
    found = await repository.get_many_locked(session, [*cancelled_ids, *moved_ids])
    rows = [one.appointment for one in found.values()]
    cancelled, moved = _with_teams(rows, cancelled_ids), _with_teams(rows, moved_ids)
    providers = {row.provider_id for row in rows}
    clients = {row.client_key for row in moved}
    for booking in decided:
        options = [booking.option, *(option for option, _ in booking.candidates or ())]
        providers.update(option.known.terms.provider_id for option in options)
        clients.add(booking.option.proposal.client_key)
    # The steps that take locks as the batch goes: each cancelled row's provider's (its
    # hand-on), each reschedule's (its judgment takes all its rows' at once, in order), the
    # bookings' write. One step alone takes its locks in order without help.
    steps = len({row.provider_id for row in cancelled}) + len(moving) + bool(decided)
    if steps > 1 and len(providers) + len(clients) > 1:
        jobs = [job for job, _ in cancelling] + [job for job, _ in moving]
        now = max(job.now for job in [*jobs, *(found.job for found in decided)])
        # The writes' first step, taken once for them all; not where it would release a row
        # the batch changes (an unverified booking past its hold): changed first, as asked.
        if (moving or decided) and not any(repository.lapsed(row, now) for row in rows):
            await write.lock_and_release(session, providers, clients, now=now)
        else:
            await repository.lock_in_order(session, providers, clients)
    return found


def _with_teams(rows: list[Appointment], ids: set[uuid.UUID]) -> list[Appointment]:
    """The rows of these ids, with the other rows of their collective team bookings."""
    teams = {row.team_booking_id for row in rows if row.id in ids} - {None}
    return [row for row in rows if row.id in ids or row.team_booking_id in teams]


def _counted(option: _Option) -> tuple[uuid.UUID | None, Interval]:
    """What round robin counts for a candidate: their service, in the booking's period."""
    placement = option.proposal.placement
    return placement.offering.id, round_robin.period(placement.start_at)


# A provider's time: the provider, and the span a booking blocks (its buffers included).
_Time = tuple[uuid.UUID, datetime, datetime]


def _time_of(provider_id: uuid.UUID, placed: Placement | write.Claim) -> _Time:
    return provider_id, placed.blocked_start_at, placed.blocked_end_at


def _taken_by(rows: list[write.Row], outcomes: list[Refusal | None]) -> set[_Time]:
    """The providers' times a write took (a row written, not a seat: a session has room
    for more) or found taken (SLOT_UNAVAILABLE)."""
    return {
        _time_of(row.claim.provider_id, row.claim)
        for row, outcome in zip(rows, outcomes, strict=True)
        if (outcome is None and not row.probe and row.claim.session_key is None)
        or (outcome is not None and outcome.reason is Reason.SLOT_UNAVAILABLE)
    }


def _taken(proposal: Proposal, placed: list[Proposal]) -> bool:
    """Is the provider's time taken by a booking of the batch placed before it?"""
    return any(scheduling.clash(proposal, other) is Clash.PROVIDER_TIME for other in placed)


def _answer_of() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


def _answer(job: _Job, booked: Booked) -> None:
    if not job.answer.done():
        job.answer.set_result(booked)


def _refuse(job: _Queued, exc: BaseException) -> None:
    if not job.answer.done():
        job.answer.set_exception(exc)


def _fail_all(jobs: list[_Queued], exc: BaseException) -> None:
    for job in jobs:
        if not isinstance(exc, Exception):  # the writer was cancelled: so are its jobs
            job.answer.cancel()
        else:
            _refuse(job, exc)
