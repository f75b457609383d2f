"""The booking queue: the bookings a worker receives together are decided and written
together, each still answered on its own.

A booking's own work is small; what it costs is the transaction around it (a connection,
BEGIN, the locks, COMMIT, and each statement's fixed cost through the driver). So each
worker has writers (two on PostgreSQL, one on SQLite): a booking request queues its job and
waits; a writer takes its share of the queued jobs (``_fair_share``) and, in one
transaction, looks up the callers (one query), decides each booking on the provider's
kept terms (``create.propose``), sets aside those that compete with an earlier one of the
batch (``scheduling.arrange``) and hands the rest to the one write (``write.take``), which
says of each what became of it. While a batch is written the next requests queue, and form
the next batch; a lone request goes at once.

Each job is answered by what became of it: a refusal (409, 422, 401) as soon as it is
known, a booking once it is committed. A booking that competes with an earlier one of the
batch waits for that one's fate (``scheduling.settle``): written, the later one's time is
taken (refused once the transaction commits); refused, the later one is refused alike where
the reason covers it; otherwise it is written in the batch's next round (up to ROUNDS
writes), then in the next batch. A job also goes back to the queue when refused on kept terms or
found stale (decided again on fresh terms), or in a batch the database refused as a whole
(a deadlock, a foreign key: each such job is then written in a batch of its own, so one
cannot fail another again).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog
from redis.asyncio import Redis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.auth import callers
from slotwise.auth.tokens import InvalidToken, TokenClaims
from slotwise.booking import create, write
from slotwise.booking.create import Booked
from slotwise.booking.errors import TermsChanged, refused
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import ATTEMPTS, Known, TermsCache
from slotwise.db import Database
from slotwise.errors import AppError
from slotwise.scheduling import Proposal, Reason, Refusal
from slotwise.users.models import User

MAX_BATCH = 64
WRITERS = 2
COALESCE_SECONDS = 0.002  # the longest a writer waits for its share of the bookings
ROUNDS = 4  # writes a batch makes before leaving what still competes to the next batch

log = structlog.get_logger("slotwise.booking")


@dataclass(slots=True)
class _Job:
    claims: TokenClaims | None  # verified; the user is looked up in the batch
    data: AppointmentCreate
    now: datetime
    answer: asyncio.Future[Booked]
    fresh: bool = False  # decide on terms read afresh (kept ones refused, or proved stale)
    decisions: int = 0  # how many times it was decided: bounded by terms.ATTEMPTS
    alone: bool = False  # written in a batch of its own


@dataclass(slots=True)
class _Decided:
    job: _Job
    proposal: Proposal
    known: Known
    user: User | None
    booked: Booked | None = None  # built once the write is to take it (``_booked``)


class BookingQueue:
    """One per worker: ``submit`` queues a booking for the next batch and waits for its
    answer."""

    def __init__(
        self,
        database: Database,
        terms: TermsCache,
        redis: Redis | None,
        *,
        max_batch: int = MAX_BATCH,
        writers: int | None = None,
        guests: GuestPolicy | None = None,
    ) -> None:
        """``writers``: batches in flight at once (default: one on SQLite, whose write lock
        admits one anyway; several on PostgreSQL, so that while one batch waits on the
        database the worker checks the next). ``guests``: what guests' bookings are held to."""
        self.database = database
        self.terms = terms
        self.redis = redis
        self.guests = guests or GuestPolicy()
        self.max_batch = max_batch
        self.writers = writers or (1 if database.is_sqlite else WRITERS)
        self._queue: list[_Job] = []
        self._running: set[asyncio.Task[None]] = set()
        self._in_flight = 0  # jobs in the batches being written
        self._arrived = asyncio.Event()  # set when a job is queued

    async def submit(
        self, *, claims: TokenClaims | None, data: AppointmentCreate, now: datetime
    ) -> Booked:
        """The booking, decided and written with those that arrive alongside; its refusal
        raised as the API's error."""
        answer: asyncio.Future[Booked] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(claims=claims, data=data, now=now, answer=answer))
        self._arrived.set()
        self._start_writer()
        return await answer

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

    async def _write(self, batch: list[_Job]) -> None:
        jobs = [job for job in batch if not job.answer.done()]  # cancelled while queued
        later: list[_Job] = []
        try:
            async with self.database.transaction(writes=True) as session:
                written, taken = await self._decide_and_write(session, jobs, later)
        except DBAPIError as exc:  # refused as a whole: a deadlock, a foreign key
            if len(jobs) == 1:
                _fail_all(jobs, exc)
                return
            written, taken, later = [], [], jobs
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
        self._requeue(later)

    def _requeue(self, jobs: list[_Job]) -> None:
        """Jobs whose answer the next batch gives: ahead of those queued since."""
        jobs = [job for job in jobs if not job.answer.done()]
        if jobs:
            self._queue[:0] = jobs
            self._arrived.set()
            self._start_writer()

    async def _decide_and_write(
        self, session: AsyncSession, jobs: list[_Job], later: list[_Job]
    ) -> tuple[list[_Decided], list[tuple[_Job, Refusal]]]:
        """The callers, the decisions, the write. Returns the jobs written and those whose
        time a booking written with them took (both answered once the transaction commits);
        refused jobs are answered at once, and jobs to decide or write again put in
        ``later``."""
        signed_in = [job.claims for job in jobs if job.claims is not None]
        users = iter(await callers.users_for_claims(session, self.redis, signed_in))
        decided: list[_Decided] = []
        for job in jobs:
            user = next(users) if job.claims is not None else None
            if isinstance(user, InvalidToken):
                _refuse(job, user)
            elif found := await self._decide(session, job, user, later):
                decided.append(found)
        written: list[_Decided] = []
        taken: list[tuple[_Job, Refusal]] = []
        pending = decided
        for _ in range(ROUNDS):
            pending = await self._round(session, pending, written, taken, later)
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
        later: list[_Job],
    ) -> list[_Decided]:
        """One write of the bookings that do not compete (``scheduling.arrange``); those
        that waited on one are settled by its fate (``scheduling.settle``) where that
        decides them. Returns those still to write."""
        placed = scheduling.arrange([found.proposal for found in decided])
        admitted = [index for index, waiting in enumerate(placed) if waiting is None]
        rows = [
            create.row_of(session, self._booked(decided[i]), decided[i].proposal, self.guests)
            for i in admitted
        ]
        outcomes = dict(zip(admitted, await write.take(session, rows), strict=True))
        for index, outcome in outcomes.items():
            found = decided[index]
            if outcome is None:
                written.append(found)
            elif outcome.reason is Reason.TERMS_CHANGED:
                self._again(found.job, later)
            else:
                _refuse(found.job, refused(outcome))
        still: list[_Decided] = []
        for found, waiting in zip(decided, placed, strict=True):
            if waiting is None:
                continue
            blocker = decided[waiting.blocker]
            outcome = outcomes[waiting.blocker]
            if outcome is not None and outcome.reason is Reason.TERMS_CHANGED:
                still.append(found)
                continue
            refusal = scheduling.settle(found.proposal, blocker.proposal, outcome)
            if refusal is None:
                still.append(found)
            elif outcome is None:  # its time went to a booking answered at the commit
                taken.append((found.job, refusal))
            else:
                _refuse(found.job, refused(refusal))
        return still

    async def _decide(
        self, session: AsyncSession, job: _Job, user: User | None, later: list[_Job]
    ) -> _Decided | None:
        """The booking decided on the provider's terms; None if the job was answered or
        put in ``later`` to be decided again on fresh terms."""
        try:
            client_key = create.check_caller(user, job.data)
            known, kept = await self.terms.get(
                session, job.data.provider_id, now=job.now, fresh=job.fresh
            )
        except AppError as refusal:
            _refuse(job, refusal)
            return None
        job.decisions += 1
        proposal = create.propose(
            known.terms, user=user, data=job.data, client_key=client_key, now=job.now
        )
        if isinstance(proposal, Refusal):
            if kept:  # kept terms may be stale: a refusal is given on fresh ones only
                self._again(job, later)
            else:
                _refuse(job, refused(proposal))
            return None
        return _Decided(job=job, proposal=proposal, known=known, user=user)

    def _booked(self, found: _Decided) -> Booked:
        """The booking's rows, built when the write is to take it: most of those that
        wait on another of their batch are settled by its fate, and never written."""
        if found.booked is None:
            found.booked = create.new_booking(
                found.known,
                found.proposal,
                user=found.user,
                data=found.job.data,
                now=found.job.now,
                guests=self.guests,
            )
        return found.booked

    @staticmethod
    def _again(job: _Job, later: list[_Job]) -> None:
        """Decide the job again, on fresh terms, in the next batch (TermsChanged after
        ATTEMPTS decisions on terms that kept changing)."""
        if job.decisions >= ATTEMPTS:
            _refuse(job, TermsChanged())
            return
        job.fresh = True
        later.append(job)


def _answer(job: _Job, booked: Booked) -> None:
    if not job.answer.done():
        job.answer.set_result(booked)


def _refuse(job: _Job, exc: BaseException) -> None:
    if not job.answer.done():
        job.answer.set_exception(exc)


def _fail_all(jobs: list[_Job], exc: BaseException) -> None:
    for job in jobs:
        if not isinstance(exc, Exception):  # the writer was cancelled: so are its jobs
            job.answer.cancel()
        else:
            _refuse(job, exc)
