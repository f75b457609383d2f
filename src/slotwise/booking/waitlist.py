"""Waitlist: clients (or guests) in line for a full slot or session, and the hand-over of
each freed place to the first of them.

Joining is judged as a booking is (``scheduling.decide``, then the write's judgment, read
only): a time that is free is refused (``SlotAvailable``: book it instead). Line order is
``seq``, numbered per provider under the provider's booking lock.

A place is handed over as a row the constraints count, under the provider's booking lock,
in the transaction of the change that frees it (``promote``: a cancellation, a decline, a
reschedule's old time, a session cancelled, a hold released; ``hand_on_released``: a lapsed
hold or unverified guest booking released by a write's first step): the place is never free to
anyone else in between, and two changes that free places of one provider queue on the lock,
the second seeing what the first handed over. Each waiter in line is given the place by the
one write (``booking.write.take``):

- ``book``: a booking for them, as if they had booked (history, messages,
  ``booking.created``);
- ``offer``: a hold for them (``booking.holds``: a ``held`` row whose ``held_by`` names
  the entry) and an email with its token; the offer lasts ``offer_until``, and the hold
  itself lasts until the time starts, so an offer never frees its place by itself: when it
  ends, ``pass_expired`` (the ``OfferSweeper``, every few seconds, in each process) deletes
  the hold and hands the place to the next in line in one transaction, under the lock.

A waiter whose own rules refuse the place (a conflict, their limit, a block) is skipped and
the next one is tried; a time that can no longer be booked (past, inside notice) ends the
entry. Exactly one waiter gets each place because each place is one row, written by the
one write under the lock that every hand-over takes before it reads the line.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from slotwise import scheduling
from slotwise.auth import tokens
from slotwise.booking import create, facts, publish, repository, terms, write
from slotwise.booking import waitlist_repository as entries
from slotwise.booking.errors import (
    AlreadyWaiting,
    ClientConflict,
    GuestDetailsNotAllowed,
    GuestDetailsRequired,
    HoldExpired,
    InvalidTransition,
    SlotAvailable,
    TermsChanged,
    WaitlistEntryNotFound,
    WaitlistLimitReached,
    refused,
)
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.models import (
    Appointment,
    WaitlistEntry,
    WaitlistMode,
    WaitlistStatus,
    guest_key,
)
from slotwise.booking.schemas import AppointmentCreate, GuestDetails
from slotwise.booking.terms import ATTEMPTS, Known, TermsCache
from slotwise.booking.waitlist_schemas import WaitlistCreate
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.notifications import outbox
from slotwise.scheduling import Interval, Limit, Proposal, Reason, Refusal
from slotwise.users.models import User

log = structlog.get_logger(__name__)

# The session's ``info`` key of the application's waitlist policy (``main.create_app`` puts
# it there, so every change that frees a place has it without taking settings).
POLICY_KEY = "slotwise.waitlist"
# An offer's link when the application has no page of its own: the hold it is (GET).
HOLD_PATH = "/api/v1/holds/{token}"
# Waiters tried per freed place, at most (each try is one judgment).
MAX_TRIED = 20
# A place refused for these is not free (yet): the waiter keeps their place in line.
_NOT_FREE = frozenset({Reason.SLOT_UNAVAILABLE, Reason.SESSION_FULL})


@dataclass(frozen=True, slots=True)
class WaitlistPolicy:
    """The settings waitlists are held to."""

    offer: timedelta = timedelta(minutes=30)
    max_per_client: int = 5  # entries in line of one client with one provider
    offer_url: str = ""  # an offer's page, with {token}; empty: the email gives the token
    guests: GuestPolicy = field(default_factory=GuestPolicy)  # what a waiter's booking obeys

    @classmethod
    def from_settings(cls, settings: Settings) -> WaitlistPolicy:
        return cls(
            offer=timedelta(minutes=settings.waitlist_offer_minutes),
            max_per_client=settings.waitlist_max_per_client,
            offer_url=settings.waitlist_offer_url
            or settings.public_base_url.rstrip("/") + HOLD_PATH,
            guests=GuestPolicy.from_settings(settings),
        )


def policy_of(session: AsyncSession) -> WaitlistPolicy:
    policy = session.info.get(POLICY_KEY)
    return policy if isinstance(policy, WaitlistPolicy) else WaitlistPolicy()


@dataclass(frozen=True, slots=True)
class Joined:
    entry: WaitlistEntry
    position: int
    manage_token: str | None  # a guest's: shown once


# -- joining, reading, leaving ----------------------------------------------------------------


def _client_key(user: User | None, data: WaitlistCreate) -> str:
    if user is None and data.guest_details is None:
        raise GuestDetailsRequired()
    if user is not None and data.guest_details is not None:
        raise GuestDetailsNotAllowed()
    if user is not None:
        return user.email.lower()
    assert data.guest_details is not None
    return guest_key(str(data.guest_details.email))


async def join(
    session: AsyncSession,
    *,
    kept_terms: TermsCache,
    user: User | None,
    data: WaitlistCreate,
    now: datetime,
    policy: WaitlistPolicy,
) -> Joined:
    """A place in line for a time that is taken: decided as a booking, then judged under
    the provider's lock (so no hand-over falls between the judgment and the entry).
    SlotAvailable if the time is free; the booking's refusals otherwise."""
    client_key = _client_key(user, data)
    request = scheduling.Request(
        service_id=data.service_id,
        start_time=data.start_datetime,
        end_time=data.end_datetime,
        by=user.id if user is not None else None,
    )
    fresh = False
    for _ in range(ATTEMPTS):
        known, kept = await kept_terms.get(session, data.provider_id, now=now, fresh=fresh)
        decided = scheduling.decide(known.terms, request, now=now)
        if isinstance(decided, Refusal):
            if not kept:
                raise refused(decided)
            fresh = True
            continue
        proposal = Proposal(
            terms=known.terms,
            placement=decided,
            client_key=client_key,
            counted_per_client=user is None or known.terms.limits.per_client is not None,
        )
        claim = create.claim_of(proposal, guest=user is None, now=now, guests=policy.guests)
        await write.lock(session, [claim])
        (answers,) = await write.judge(session, [claim])
        outcome = write.verdict(claim, answers)
        if outcome is None:
            raise SlotAvailable()
        if outcome.reason is Reason.TERMS_CHANGED:
            fresh = True
            continue
        if outcome.reason not in _NOT_FREE:
            raise refused(outcome)
        if answers.client_busy:  # the client's own time there: no place to wait for
            raise ClientConflict()
        return await _enter(
            session, known, decided, user=user, data=data, client_key=client_key, now=now,
            policy=policy,
        )  # fmt: skip
    raise TermsChanged()


async def _enter(
    session: AsyncSession,
    known: Known,
    placement: scheduling.Placement,
    *,
    user: User | None,
    data: WaitlistCreate,
    client_key: str,
    now: datetime,
    policy: WaitlistPolicy,
) -> Joined:
    provider_id = known.terms.provider_id
    found = await entries.in_line_for(
        session, provider_id=provider_id, start_at=placement.start_at, client_key=client_key
    )
    if found is not None:
        raise AlreadyWaiting()
    waiting = await entries.count_in_line(session, provider_id=provider_id, client_key=client_key)
    if waiting >= policy.max_per_client:
        raise WaitlistLimitReached(details={"max_entries": policy.max_per_client})
    token = tokens.new_secret_token() if user is None else None
    guest = data.guest_details
    entry = WaitlistEntry(
        id=uuid.uuid4(),
        provider_id=provider_id,
        service_id=placement.offering.id,
        seq=await entries.next_seq(session, provider_id),
        start_at=placement.start_at,
        end_at=placement.end_at,
        blocked_start_at=placement.blocked_start_at,
        blocked_end_at=placement.blocked_end_at,
        timezone=known.timezone,
        client_id=user.id if user is not None else None,
        client_key=client_key,
        guest_name=guest.name if guest else None,
        guest_email=str(guest.email).lower() if guest else None,
        guest_phone=guest.phone if guest else None,
        notes=data.notes,
        mode=data.mode,
        status=WaitlistStatus.WAITING.value,
        appointment_id=None,
        offer_until=None,
        reason=None,
        manage_token_hash=tokens.fingerprint(token) if token else None,
        created_at=now,
        updated_at=now,
    )
    session.add(entry)
    await session.flush()
    position = await entries.position(session, entry)
    assert position is not None
    return Joined(entry=entry, position=position, manage_token=token)


async def get_own(session: AsyncSession, *, user: User, entry_id: uuid.UUID) -> WaitlistEntry:
    """The user's own entry (anyone else's, or none: WaitlistEntryNotFound)."""
    entry = await entries.get(session, entry_id)
    if entry is None or entry.client_id != user.id:
        raise WaitlistEntryNotFound()
    return entry


async def get_by_token(session: AsyncSession, *, token: str) -> WaitlistEntry:
    """A guest's entry, by the manage token shown when they joined."""
    entry = await entries.get_by_token_hash(session, tokens.fingerprint(token))
    if entry is None:
        raise WaitlistEntryNotFound()
    return entry


async def position(session: AsyncSession, entry: WaitlistEntry) -> int | None:
    return await entries.position(session, entry)


async def leave(session: AsyncSession, entry: WaitlistEntry, *, now: datetime) -> None:
    """The entry leaves the line; an offer it holds is handed to the next in line.
    InvalidTransition once it is out of line (booked, expired, skipped, left)."""
    await repository.lock_provider(session, entry.provider_id)
    fresh = await entries.get(session, entry.id)  # as it is now, after the lock
    assert fresh is not None
    if fresh.status not in entries.IN_LINE:
        raise InvalidTransition(details={"from": fresh.status, "to": WaitlistStatus.LEFT.value})
    offered = fresh.status == WaitlistStatus.OFFERED.value
    _close(fresh, WaitlistStatus.LEFT, None, now)
    if offered:
        await _withdraw_offer(session, fresh, now=now)


async def _withdraw_offer(session: AsyncSession, entry: WaitlistEntry, *, now: datetime) -> None:
    """The entry's offer hold deleted, and its place handed on (the lock is held)."""
    hold = await entries.offer_hold(session, entry.id)
    if hold is not None:
        await repository.delete_hold(session, hold)
    span = Interval(entry.blocked_start_at, entry.blocked_end_at)
    await _hand_on(session, entry.provider_id, [span], now=now)


async def end_session(
    session: AsyncSession,
    *,
    provider_id: uuid.UUID,
    service_id: uuid.UUID | None,
    start_at: datetime,
    session_key: uuid.UUID,
    now: datetime,
) -> None:
    """A group session its provider cancelled: its held seats let go and everyone in its
    line (waiting, or holding an offer) told by their entry's status: ``expired``,
    reason ``session_cancelled``."""
    await repository.lock_provider(session, provider_id)
    for hold in await entries.session_holds(session, session_key=session_key):
        await repository.delete_hold(session, hold)
    for entry in await entries.in_line_for_session(
        session, provider_id=provider_id, service_id=service_id, start_at=start_at
    ):
        _close(entry, WaitlistStatus.EXPIRED, "session_cancelled", now)
    await session.flush()


# -- the hand-over --------------------------------------------------------------------------


async def promote(
    session: AsyncSession, freed: Mapping[uuid.UUID, list[Interval]], *, now: datetime
) -> None:
    """Times (blocked spans) of providers ``freed`` have just been freed in this session's
    transaction: under the providers' booking locks (taken in their order), hand each to
    the first in line for it, provider by provider in the order of their ids. Who waits
    is read once for all of them; a provider the transaction already found with nobody in
    line (``entries.note_lines``) is left out, and so is the read when none is left."""
    empty = entries.nobody_waits(session)
    freed = {provider_id: spans for provider_id, spans in freed.items() if provider_id not in empty}
    if not freed:
        return
    providers = sorted(freed)
    await repository.lock_in_order(session, providers)
    waiting = await entries.waiting_for(session, freed, limit=MAX_TRIED)
    for provider_id in providers:
        await _hand_on(session, provider_id, freed[provider_id], now=now, waiting=waiting)


async def pass_expired(session: AsyncSession, *, provider_id: uuid.UUID, now: datetime) -> None:
    """Under the provider's lock: every offer past its end is withdrawn (its entry expired)
    and its place handed to the next in line; so is the time of any lapsed hold that
    waiters wait for."""
    await repository.lock_provider(session, provider_id)
    spans: list[Interval] = []
    for entry in await entries.ended_offers(session, provider_id=provider_id, now=now):
        hold = await entries.offer_hold(session, entry.id)
        if hold is not None:
            await repository.delete_hold(session, hold)
        _close(entry, WaitlistStatus.EXPIRED, "offer_expired", now)
        spans.append(Interval(entry.blocked_start_at, entry.blocked_end_at))
    # A lapsed hold is released by the write that hands its time over (its first step).
    spans += await entries.lapsed_holds_with_waiters(session, provider_id=provider_id, now=now)
    if spans:
        await _hand_on(session, provider_id, spans, now=now)
    await session.flush()


async def hand_on_released(
    session: AsyncSession, released: list[repository.Released], *, now: datetime
) -> None:
    """Time a write's release step has just freed (lapsed holds, unverified guest bookings of
    the providers it locked), handed to the first in line for it before the write judges its
    own rows (``write.RELEASED_KEY``; the write's locks are held)."""
    by_provider: dict[uuid.UUID, list[Interval]] = {}
    for item in released:
        by_provider.setdefault(item.provider_id, []).append(item.span)
    for provider_id, spans in sorted(by_provider.items()):
        await _hand_on(session, provider_id, spans, now=now)


# The session's ``info`` keys of a hand-over under way, and of the time freed meanwhile by
# the release step of the writes it makes, handed on after it (never inside it: its own
# waiter is not yet marked as served).
_HANDING = "slotwise.waitlist.handing"
_DEFERRED = "slotwise.waitlist.deferred"


async def _hand_on(
    session: AsyncSession,
    provider_id: uuid.UUID,
    spans: list[Interval],
    *,
    now: datetime,
    waiting: Mapping[uuid.UUID, list[WaitlistEntry]] | None = None,
) -> None:
    """Each waiting entry whose time overlaps ``spans``, in line order, is given its time
    if it is free; the provider's lock is held. Time released by the writes of the hand-over
    itself (``hand_on_released``) is handed on after it, each span once. ``waiting``: who
    waits for ``spans``, read already (``promote``): a provider's hand-over changes only
    its own entries, so another's, read before it, are still who waits."""
    if session.info.get(_HANDING):
        session.info.setdefault(_DEFERRED, []).append((provider_id, spans))
        return
    session.info[_HANDING] = True
    try:
        handed: set[tuple[uuid.UUID, Interval]] = set()
        pending = [(provider_id, spans)]
        read = waiting[provider_id] if waiting is not None else None
        while pending:
            provider, asked = pending.pop(0)
            fresh = [span for span in asked if (provider, span) not in handed]
            handed.update((provider, span) for span in fresh)
            if fresh:
                await _hand_on_now(session, provider, fresh, now=now, waiting=read)
            read = None  # time the hand-over itself released: who waits for it, read anew
            pending += session.info.pop(_DEFERRED, [])
    finally:
        session.info.pop(_HANDING, None)
        session.info.pop(_DEFERRED, None)


async def _hand_on_now(
    session: AsyncSession,
    provider_id: uuid.UUID,
    spans: list[Interval],
    *,
    now: datetime,
    waiting: list[WaitlistEntry] | None = None,
) -> None:
    if waiting is None:
        found = await entries.waiting_for(session, {provider_id: spans}, limit=MAX_TRIED)
        waiting = found[provider_id]
    # Read before an earlier hand-over of the transaction (``promote``): one that served
    # an entry meanwhile leaves it to no one else.
    waiting = [entry for entry in waiting if entry.status == WaitlistStatus.WAITING.value]
    if not waiting:
        return
    policy = policy_of(session)
    known = await terms.read(session, str(provider_id), now=now)
    for entry in waiting:
        for _ in range(ATTEMPTS):
            outcome = await _give(session, entry, known, now=now, policy=policy)
            if outcome is None or outcome.reason is not Reason.TERMS_CHANGED:
                break
            known = await terms.read(session, str(provider_id), now=now)
    await session.flush()


async def _give(
    session: AsyncSession,
    entry: WaitlistEntry,
    known: Known,
    *,
    now: datetime,
    policy: WaitlistPolicy,
) -> Refusal | None:
    """The entry's time, written for its waiter (a booking or an offer), or why not: the
    entry then keeps its place (the time is not free), or leaves the line (the time can no
    longer be booked: expired; the waiter's own rules refuse it: skipped)."""
    user = await session.get(User, entry.client_id) if entry.client_id is not None else None
    if user is not None and (not user.is_active or user.is_blocked):
        # Deactivated or suspended since joining: they could not book it themselves.
        suspended = Refusal(Reason.CLIENT_BLOCKED)
        _close(entry, WaitlistStatus.SKIPPED, suspended.reason.value, now)
        return suspended
    request = scheduling.Request(
        service_id=entry.service_id,
        start_time=entry.start_at,
        end_time=entry.end_at,
        by=entry.client_id,
    )
    decided = scheduling.decide(known.terms, request, now=now)
    if isinstance(decided, Refusal):
        _close(entry, WaitlistStatus.EXPIRED, decided.reason.value, now)
        return decided
    if entry.mode == WaitlistMode.BOOK.value:
        row = _booking(session, entry, known, decided, user=user, now=now, policy=policy)
    else:
        row = _offer(entry, known, decided, user=user, now=now, policy=policy)
    (outcome,) = await write.take(session, [row])
    if outcome is None:
        entry.appointment_id = row.appointment["id"]
        if entry.mode == WaitlistMode.BOOK.value:
            _close(entry, WaitlistStatus.BOOKED, None, now)
        else:
            entry.status = WaitlistStatus.OFFERED.value
            entry.offer_until = now + policy.offer
            entry.updated_at = now
        return None
    if outcome.reason is Reason.TERMS_CHANGED or _not_free(outcome):
        return outcome
    _close(entry, WaitlistStatus.SKIPPED, outcome.reason.value, now)
    return outcome


def _not_free(outcome: Refusal) -> bool:
    """Refused for the place, not for the waiter: the provider's own day or week is full."""
    if outcome.reason in _NOT_FREE:
        return True
    return outcome.reason is Reason.LIMIT_REACHED and outcome.details.get("limit") in (
        Limit.PER_DAY.value,
        Limit.PER_WEEK.value,
    )


def _close(entry: WaitlistEntry, status: WaitlistStatus, reason: str | None, now: datetime) -> None:
    entry.status = status.value
    entry.reason = reason
    entry.updated_at = now


def _booking(
    session: AsyncSession,
    entry: WaitlistEntry,
    known: Known,
    placement: scheduling.Placement,
    *,
    user: User | None,
    now: datetime,
    policy: WaitlistPolicy,
) -> write.Row:
    """The waiter's booking, as if they had booked it themselves."""
    guest = (
        GuestDetails(name=entry.guest_name, email=entry.guest_email, phone=entry.guest_phone)
        if user is None and entry.guest_email is not None and entry.guest_name is not None
        else None
    )
    data = AppointmentCreate(
        provider_id=str(entry.provider_id),
        start_datetime=entry.start_at,
        end_datetime=entry.end_at,
        service_id=entry.service_id,
        notes=entry.notes,
        guest_details=guest,
    )
    proposal = Proposal(
        terms=known.terms,
        placement=placement,
        client_key=entry.client_key,
        counted_per_client=user is None or known.terms.limits.per_client is not None,
    )
    booked = create.new_booking(
        known, proposal, user=user, data=data, now=now, guests=policy.guests
    )
    return create.row_of(session, booked, proposal, policy.guests)


def _offer(
    entry: WaitlistEntry,
    known: Known,
    placement: scheduling.Placement,
    *,
    user: User | None,
    now: datetime,
    policy: WaitlistPolicy,
) -> write.Row:
    """A hold of the time for the waiter (held by the entry, until the time starts: the
    offer's own end is the entry's ``offer_until``), and the email offering it."""
    made = create.new_hold(
        known,
        placement,
        user=user,
        own_key=entry.client_key,
        holder=entries.holder_of(entry.id),
        hold_cap=1,  # the entry's one offer
        hold_until=placement.start_at,
        now=now,
    )
    hold, token = made.hold, made.token
    waiter = facts.Party(
        email=user.email if user is not None else entry.guest_email or "",
        name=user.full_name if user is not None else entry.guest_name or "",
        timezone=(user.timezone if user is not None else None) or known.timezone,
    )
    parties = facts.Parties(
        provider=facts.Party(email=known.email, name=known.full_name, timezone=known.timezone),
        client=waiter,
        title=facts.title(known.full_name, placement.offering.name),
    )
    messages = outbox.Batch()
    outbox.add_waitlist_offer(
        messages,
        booking=publish.facts(hold, parties),
        offer_until=now + policy.offer,
        hold_token=token,
        offer_url=policy.offer_url.replace("{token}", token) if policy.offer_url else None,
        now=now,
    )
    return replace(made.row, messages=messages.rows)


# -- an offer's hold, booked or read with its token (booking.holds) --------------------------


async def take_offer(session: AsyncSession, hold: Appointment, *, now: datetime) -> None:
    """The hold is being booked with its token: if it is an offer's, its entry is booked
    (HoldExpired once the offer ended, even before the sweeper withdrew it)."""
    entry_id = entries.entry_of_holder(hold.held_by)
    if entry_id is None:
        return
    entry = await entries.get(session, entry_id)
    if (
        entry is None
        or entry.status != WaitlistStatus.OFFERED.value
        or entry.offer_until is None
        or entry.offer_until <= now
    ):
        raise HoldExpired()
    _close(entry, WaitlistStatus.BOOKED, None, now)


async def offer_end(session: AsyncSession, hold: Appointment) -> datetime | None:
    """An offer's hold shows the offer's end as its own (None: ended, or not an offer)."""
    entry_id = entries.entry_of_holder(hold.held_by)
    if entry_id is None:
        return hold.hold_until
    entry = await entries.get(session, entry_id)
    if entry is None or entry.status != WaitlistStatus.OFFERED.value:
        return None
    set_committed_value(hold, "hold_until", entry.offer_until)  # shown, never written
    return entry.offer_until


async def released(session: AsyncSession, hold: Appointment, *, now: datetime) -> None:
    """A hold was released by its token (deleted, the lock held): an offer's entry leaves
    the line; either way its place goes to the next in line."""
    entry_id = entries.entry_of_holder(hold.held_by)
    if entry_id is not None:
        entry = await entries.get(session, entry_id)
        if entry is not None and entry.status == WaitlistStatus.OFFERED.value:
            _close(entry, WaitlistStatus.LEFT, "offer_released", now)
    span = Interval(hold.blocked_start_at, hold.blocked_end_at)
    await _hand_on(session, hold.provider_id, [span], now=now)


# -- the sweeper: ended offers passed on -------------------------------------------------------


async def sweep(database: Database, *, now: datetime) -> int:
    """Every provider's ended offers (and lapsed holds that waiters wait for) passed on,
    one provider a transaction; the number of providers seen to."""
    async with database.transaction(writes=False) as session:
        providers = await entries.providers_to_sweep(session, now=now)
    for provider_id in providers:
        async with database.transaction(writes=True) as session:
            await pass_expired(session, provider_id=provider_id, now=now)
    return len(providers)


class OfferSweeper:
    """``sweep`` every ``every_seconds`` in the background, from the application's
    lifespan. Safe in every process at once: each pass takes the provider's lock, and a
    pass that finds nothing ended writes nothing. A late pass keeps a place held a few
    seconds longer; it never gives it twice."""

    def __init__(self, database: Database, *, every_seconds: float) -> None:
        self.database = database
        self.every_seconds = every_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="waitlist-sweeper")

    async def _run(self) -> None:
        while True:
            try:
                await sweep(self.database, now=_now())
            except Exception:  # a database hiccup: the next pass tries again
                log.exception("waitlist_sweep_failed")
            await asyncio.sleep(self.every_seconds)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _now() -> datetime:
    return datetime.now(UTC)


async def provider_page(
    session: AsyncSession,
    *,
    provider_id: uuid.UUID,
    start_from: datetime,
    start_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[tuple[WaitlistEntry, int | None, str, str]], int]:
    """The provider's entries in line for times in [start_from, start_to), each with its
    place and who waits (name, email)."""
    rows, total = await entries.page_for_provider(
        session,
        provider_id=provider_id,
        start_from=start_from,
        start_to=start_to,
        limit=limit,
        offset=offset,
    )
    found = []
    for entry in rows:
        user = await session.get(User, entry.client_id) if entry.client_id is not None else None
        name = user.full_name if user is not None else entry.guest_name or ""
        email = user.email if user is not None else entry.guest_email or ""
        found.append((entry, await entries.position(session, entry), name, email))
    return found, total
