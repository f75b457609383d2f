"""Group commit: the bookings a worker receives together are checked and written together,
each still answered on its own.

A booking's own work is small; what it costs is the transaction around it (a connection,
BEGIN, the locks, COMMIT, and each statement's fixed cost through the driver). So each
worker has writers (two on PostgreSQL, one on SQLite): a booking request queues its job and
waits; a writer takes its share of the queued jobs (``_fair_share``), looks up the callers
(one query) and checks each booking against the provider's kept terms. Then:

- on PostgreSQL it writes them all in one statement, in an autocommit session (no BEGIN or
  COMMIT of its own): the statement takes their locks, inserts each whose provider is still
  at the rules version it was checked at and whose client is not blocked, skipping any
  whose time an exclusion constraint finds taken, with the history and messages of those
  written (``create.write_unless_taken``). Two round trips a batch.
  Guests' bookings are booked alone there: the cap on a guest's bookings must be counted
  after the locks, and the statement's snapshot is taken before them (``booking.guests``).
- on SQLite, in one BEGIN IMMEDIATE transaction, it releases the expired holds it could
  meet, asks for all their conflicts (and guests' counts) in one query and writes those
  found free (``create.write``: one INSERT per table).

While a batch is written, the next requests queue, and form the next batch; a lone request
goes at once.

Each job is answered by what its own checks found: a refusal (409, 422, 401) as soon as the
writer knows it, a booking once it is committed. Anything the batch cannot settle for a job
by itself is done again alone, exactly as a single booking is (``create.book``) in a
transaction of its own after the batch, which finds the exact refusal (or books it on fresh
terms): kept terms that refused, or (SQLite) proved stale; a booking that overlaps another
of the same batch; (PostgreSQL) every booking the statement skipped; and every job of a
batch the database refused as a whole (a foreign key, a deadlock).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog
from redis.asyncio import Redis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import callers
from slotwise.auth.tokens import InvalidToken, TokenClaims
from slotwise.booking import create, repository, rules
from slotwise.booking.create import Booked, Candidate
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import REFUSALS_FROM_TERMS, StaleTerms, TermsCache
from slotwise.db import Database
from slotwise.errors import AppError
from slotwise.users.models import User

MAX_BATCH = 64
WRITERS = 2
COALESCE_SECONDS = 0.002  # the longest a writer waits for its share of the bookings

log = structlog.get_logger("slotwise.booking")


@dataclass(slots=True)
class _Job:
    claims: TokenClaims | None  # verified; the user is looked up in the batch
    data: AppointmentCreate
    now: datetime
    answer: asyncio.Future[Booked]


@dataclass(slots=True)
class _Checked:
    job: _Job
    user: User | None
    client_key: str
    candidate: Candidate


class _RefusedAsAWhole(Exception):
    """The database refused the batch's transaction: roll it back, book each job alone."""


class BookingWriter:
    """One per worker: ``book`` queues a booking for the next batch and waits for its answer."""

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

    async def book(
        self, *, claims: TokenClaims | None, data: AppointmentCreate, now: datetime
    ) -> Booked:
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
        alone: list[_Job] = []
        try:
            if self.database.is_sqlite:
                async with self.database.transaction(writes=True) as session:
                    written = await self._check_and_write(session, jobs, alone)
            else:
                async with self.database.autocommit() as session:
                    written = await self._check_and_take(session, jobs, alone)
        except _RefusedAsAWhole:
            written, alone = [], [job for job in jobs if not job.answer.done()]
        except Exception as exc:  # the database failed: every job still open hears of it
            _fail_all(jobs, exc)
            return
        for checked, booked in written:
            _answer(checked.job, booked)
        for job in alone:
            await self._book_alone(job)

    async def _allowed(
        self, session: AsyncSession, jobs: list[_Job], alone: list[_Job]
    ) -> list[_Checked]:
        """The jobs whose callers and terms allow them (the callers in one query); every
        other job answered, or set aside to be booked alone."""
        signed_in = [job.claims for job in jobs if job.claims is not None]
        users = iter(await callers.users_for_claims(session, self.redis, signed_in))
        allowed: list[_Checked] = []
        for job in jobs:
            user = next(users) if job.claims is not None else None
            if isinstance(user, InvalidToken):
                _refuse(job, user)
            elif checked := await self._check(session, job, user, alone):
                allowed.append(checked)
        return allowed

    async def _check_and_take(
        self, session: AsyncSession, jobs: list[_Job], alone: list[_Job]
    ) -> list[tuple[_Checked, Booked]]:
        """PostgreSQL, in an autocommit session: two statements a batch, the callers' query
        and one that writes every booking whose time is free (``create.write_unless_taken``).
        A booking it did not write is booked alone, which gives its refusal (or books it on
        fresh terms). No BEGIN, locks or conflicts query of their own to wait for."""
        accepted: list[_Checked] = []
        for checked in await self._allowed(session, jobs, alone):
            if checked.user is None:
                # A guest's cap counts its bookings, which the statement could only read in
                # its snapshot, taken before its locks: one committed meanwhile would be
                # missed. Booked alone, its check reads after its locks.
                alone.append(checked.job)
            elif _overlaps_any(checked, accepted):
                alone.append(checked.job)  # one of the two would be skipped: the later
            else:
                accepted.append(checked)
        if not accepted:
            return []
        asked = [(_new_booking(checked, self.guests), checked) for checked in accepted]
        try:
            written = await create.write_unless_taken(
                session, [(booked, checked.candidate.terms.version) for booked, checked in asked]
            )
        except DBAPIError as exc:  # a foreign key, a deadlock: nothing was written
            raise _RefusedAsAWhole() from exc
        taken = {id(booked) for booked in written}
        for booked, checked in asked:
            if id(booked) not in taken:
                alone.append(checked.job)
        return [(checked, booked) for booked, checked in asked if id(booked) in taken]

    async def _check_and_write(
        self, session: AsyncSession, jobs: list[_Job], alone: list[_Job]
    ) -> list[tuple[_Checked, Booked]]:
        """In one transaction (SQLite's, under its write lock): the callers, the checks, the
        locks (PostgreSQL), the conflicts query, then the bookings it found free."""
        allowed = await self._allowed(session, jobs, alone)
        if not allowed:
            return []
        try:
            pairs = [(c.candidate.terms.provider_id, c.client_key) for c in allowed]
            await repository.lock_bookings(session, pairs)
            latest = max(c.job.now for c in allowed)
            await repository.release_expired(session, pairs, now=latest)
            found = await repository.conflicts_among(session, [_asked(c) for c in allowed])
            accepted: list[_Checked] = []
            for checked, conflicts in zip(allowed, found, strict=True):
                cap = self.guests.max_active if checked.user is None else None
                try:
                    rules.refuse_conflicts(checked.candidate.terms, conflicts, guest_cap=cap)
                except StaleTerms:
                    alone.append(checked.job)  # checked again on fresh terms
                except AppError as refusal:
                    _refuse(checked.job, refusal)
                else:
                    if _overlaps_any(checked, accepted):
                        alone.append(checked.job)  # the database decides which one wins
                    else:
                        accepted.append(checked)
            written = [(checked, _new_booking(checked, self.guests)) for checked in accepted]
            if written:
                await create.write(session, [booked for _, booked in written])
        except (DBAPIError, AppError) as exc:  # a constraint's 409, a deadlock: roll back
            raise _RefusedAsAWhole() from exc
        return written

    async def _check(
        self, session: AsyncSession, job: _Job, user: User | None, alone: list[_Job]
    ) -> _Checked | None:
        """The booking against the provider's (kept) terms; None if the job was answered or
        set aside to be booked alone."""
        kept = False
        try:
            client_key = create.check_caller(user, job.data)
            terms, kept = await self.terms.get(session, job.data.provider_id, now=job.now)
            candidate = await create.prepare(session, terms, user=user, data=job.data, now=job.now)
        except REFUSALS_FROM_TERMS as refusal:
            if kept:  # kept terms may be stale: confirmed against fresh ones, alone
                alone.append(job)
            else:
                _refuse(job, refusal)
            return None
        except AppError as refusal:
            _refuse(job, refusal)
            return None
        return _Checked(job=job, user=user, client_key=client_key, candidate=candidate)

    async def _book_alone(self, job: _Job) -> None:
        if job.answer.done():
            return
        try:
            async with self.database.transaction(writes=True) as session:
                user = (
                    await callers.user_for_claims(session, self.redis, job.claims)
                    if job.claims
                    else None
                )
                booked = await create.book(
                    session,
                    kept_terms=self.terms,
                    user=user,
                    data=job.data,
                    now=job.now,
                    guests=self.guests,
                )
        except Exception as exc:
            _refuse(job, exc)
            return
        _answer(job, booked)


def _new_booking(checked: _Checked, guests: GuestPolicy) -> Booked:
    job = checked.job
    return create.new_booking(
        checked.candidate,
        user=checked.user,
        data=job.data,
        client_key=checked.client_key,
        now=job.now,
        guests=guests,
    )


def _asked(checked: _Checked) -> repository.Asked:
    placement = checked.candidate.placement
    return repository.Asked(
        provider_id=checked.candidate.terms.provider_id,
        client_key=checked.client_key,
        start_at=placement.start_at,
        end_at=placement.end_at,
        blocked_start_at=placement.blocked_start_at,
        blocked_end_at=placement.blocked_end_at,
        since=checked.job.now if checked.user is None else None,
    )


def _overlaps_any(checked: _Checked, accepted: list[_Checked]) -> bool:
    """Would this booking collide with one already accepted in the batch: the provider's
    blocked time, or the client's own appointments? (A guest's second booking with one
    provider counts as colliding: the batch's count of its bookings misses the first.)"""
    mine = checked.candidate
    for other in accepted:
        theirs = other.candidate
        same_provider = mine.terms.provider_id == theirs.terms.provider_id
        if same_provider and checked.user is None and checked.client_key == other.client_key:
            return True
        if same_provider and (
            mine.placement.blocked_start_at < theirs.placement.blocked_end_at
            and theirs.placement.blocked_start_at < mine.placement.blocked_end_at
        ):
            return True
        if checked.client_key == other.client_key and (
            mine.placement.start_at < theirs.placement.end_at
            and theirs.placement.start_at < mine.placement.end_at
        ):
            return True
    return False


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
