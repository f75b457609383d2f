"""Holds: a slot kept for someone while they fill in a form, then booked with its token.

A hold is an appointment row with the status ``held`` and a ``hold_until``: the exclusion
constraints and the seat index count it like a booking, so nobody else can book or hold
its time, and only its token books it (``book_held``; without it even its holder gets
``slot_unavailable``). It is decided as a booking (the slot must be offered, in notice and
horizon) and written by the same write (``booking.write.take``), which also counts the
holder's live holds with the provider under its locks (``HOLD_LIMIT_REACHED``). A hold has
no history and sends nothing; no list, calendar, reminder or webhook shows it.

An expired hold needs no job: listings skip it (``booking.busy``), and the next write of
that provider or client deletes it before it judges (``repository.lock_and_release``).
Booking with the token turns the hold's row into the booking, in place and under the
provider's lock: the hold's id becomes the appointment's, with a ``created`` history row,
the booking's messages and its ``booking.created`` webhook event, as any booking.

An anonymous hold has no client yet: its ``client_key`` is its own (``hold:<id>``, which
overlaps nobody's; keyed by address, two people behind one NAT would "overlap"), its
``guest_email`` '' (the table's ``has_client`` check asks for a client). A signed-in
holder's hold is theirs at once: their overlap rule and the provider's per-client limit
count it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.auth import tokens
from slotwise.booking import announce, change, create, repository, waitlist, write
from slotwise.booking.create import Booked
from slotwise.booking.errors import (
    HoldExpired,
    HoldMismatch,
    HoldNotFound,
    TermsChanged,
    refused,
)
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.integrity import raise_for_constraint
from slotwise.booking.models import Appointment, AppointmentEvent
from slotwise.booking.schemas import AppointmentCreate, HoldCreate
from slotwise.booking.terms import ATTEMPTS, TermsCache
from slotwise.config import Settings
from slotwise.db import table_of
from slotwise.scheduling import OutOfRange, Proposal, Reason, Refusal
from slotwise.users.models import User
from slotwise.webhooks.events import EventType

_APPOINTMENTS = table_of(Appointment)
_EVENTS = table_of(AppointmentEvent)


@dataclass(frozen=True, slots=True)
class HoldPolicy:
    """The settings holds are held to."""

    length: timedelta = timedelta(minutes=10)
    max_per_holder: int = 2  # live holds of one holder with one provider

    @classmethod
    def from_settings(cls, settings: Settings) -> HoldPolicy:
        return cls(
            length=timedelta(minutes=settings.hold_minutes),
            max_per_holder=settings.hold_max_per_holder,
        )


@dataclass(frozen=True, slots=True)
class Held:
    """A hold taken: its row (as written) and its token, shown once."""

    hold: Appointment
    token: str


def holder_of(user: User | None, address: str) -> str:
    """Who holds: an account, or (without one) a client address."""
    return f"user:{user.id}" if user is not None else f"addr:{address}"


async def take(
    session: AsyncSession,
    *,
    kept_terms: TermsCache,
    user: User | None,
    address: str,
    data: HoldCreate,
    now: datetime,
    policy: HoldPolicy,
) -> Held:
    """A hold of the slot asked for, decided and written as a booking is (refusals with
    the booking's reasons, and HOLD_LIMIT_REACHED)."""
    request = scheduling.Request(
        service_id=data.service_id,
        start_time=data.start_datetime,
        end_time=data.end_datetime,
        by=user.id if user is not None else None,
    )
    fresh = False
    for _ in range(ATTEMPTS):
        known, kept = await kept_terms.get(session, data.provider_id, now=now, fresh=fresh)
        terms = known.terms
        decided = scheduling.decide(terms, request, now=now)
        if isinstance(decided, Refusal):
            if not kept:
                raise refused(decided)
            fresh = True  # kept terms may be stale: a refusal is given on fresh ones only
            continue
        made = create.new_hold(
            known,
            decided,
            user=user,
            own_key=user.email.lower() if user is not None else "",
            holder=holder_of(user, address),
            hold_cap=policy.max_per_holder,
            hold_until=now + policy.length,
            now=now,
        )
        hold, token, row = made.hold, made.token, made.row
        (outcome,) = await write.take(session, [row])
        if outcome is None:
            vars(hold)["seat_no"] = row.appointment["seat_no"]  # the write picked it, for a seat
            return Held(hold=hold, token=token)
        if outcome.reason is not Reason.TERMS_CHANGED:
            raise refused(outcome)
        fresh = True
    raise TermsChanged()


async def read(session: AsyncSession, *, token: str, now: datetime) -> Appointment:
    """The live hold of this token (HoldNotFound: none, or it ended)."""
    hold = await repository.get_hold(session, tokens.fingerprint(token))
    if hold is None or _ended(hold, now):
        raise HoldNotFound()
    offer_end = await waitlist.offer_end(session, hold)  # a waitlist offer ends sooner
    if offer_end is None or offer_end <= now:
        raise HoldNotFound()
    return hold


async def release(session: AsyncSession, *, token: str, now: datetime) -> None:
    """The hold deleted: its time is free at once, or goes to the first in its waitlist
    (HoldNotFound: no such hold). Locks before rows: the provider's lock, then the hold's."""
    token_hash = tokens.fingerprint(token)
    hold = await repository.get_hold(session, token_hash)
    if hold is None:
        raise HoldNotFound()
    await repository.lock_provider(session, hold.provider_id)
    hold = await repository.get_hold(session, token_hash, lock=True)
    if hold is None:
        raise HoldNotFound()  # booked or released while this request waited
    await repository.delete_hold(session, hold)
    await waitlist.released(session, hold, now=now)


async def book_held(
    session: AsyncSession,
    *,
    kept_terms: TermsCache,
    user: User | None,
    data: AppointmentCreate,
    now: datetime,
    guests: GuestPolicy,
) -> Booked:
    """The booking of a held slot with its token (``data.hold_token``): decided as a
    booking, with notice and horizon measured from when the hold was taken; the hold's
    row becomes the booking in place. HoldNotFound, HoldExpired (ended, or booked or
    released meanwhile), HoldMismatch (another provider, service or start)."""
    assert data.hold_token is not None
    client_key = create.check_caller(user, data)
    token_hash = tokens.fingerprint(data.hold_token)
    hold = await repository.get_hold(session, token_hash)
    if hold is None:
        raise HoldNotFound()
    if _ended(hold, now):
        raise HoldExpired()
    request = scheduling.Request(
        service_id=data.service_id,
        start_time=data.start_datetime,
        end_time=data.end_datetime,
        by=user.id if user is not None else None,
        held_since=hold.created_at,
    )
    fresh = False
    for _ in range(ATTEMPTS):
        known, kept = await kept_terms.get(session, data.provider_id, now=now, fresh=fresh)
        terms = known.terms
        _check_matches(hold, terms, request)
        decided = scheduling.decide(terms, request, now=now)
        if isinstance(decided, Refusal):
            if not kept:
                raise refused(decided)
            fresh = True
            continue
        proposal = Proposal(
            terms=terms,
            placement=decided,
            client_key=client_key,
            counted_per_client=user is None or terms.limits.per_client is not None,
        )
        booked = create.new_booking(
            known, proposal, user=user, data=data, now=now, guests=guests, appointment_id=hold.id
        )
        claim = create.claim_of(proposal, guest=user is None, now=now, guests=guests)
        claim = replace(claim, exclude_id=hold.id)  # the hold does not stand in its own way
        # Locks before rows: the provider's lock first, then the hold's row, as every
        # path that changes held rows does, so that two bookings of one token queue.
        await write.lock(session, [claim])
        locked = await repository.get_hold(session, token_hash, lock=True)
        if locked is None:
            raise HoldExpired()  # booked or released while this request waited
        outcome = await write.check_locked(session, claim)
        if isinstance(outcome, int):
            await waitlist.take_offer(session, locked, now=now)  # an offer's: still open?
            await _write(session, booked, seat_no=outcome)
            return booked
        if outcome.reason is not Reason.TERMS_CHANGED:
            raise refused(outcome)
        fresh = True
    raise TermsChanged()


def _ended(hold: Appointment, now: datetime) -> bool:
    return hold.hold_until is None or hold.hold_until <= now


def _check_matches(hold: Appointment, terms: scheduling.Terms, request: scheduling.Request) -> None:
    """HoldMismatch unless the request is for the hold's provider, service and start."""
    differs = []
    if terms.provider_id != hold.provider_id:
        differs.append("provider_id")
    if request.service_id != hold.service_id:
        differs.append("service_id")
    try:
        start_at = scheduling.read_instant(request.start_time, terms.zone)
    except (OutOfRange, OverflowError):
        start_at = None
    if start_at != hold.start_at:
        differs.append("start_datetime")
    if differs:
        raise HoldMismatch(details={"differs": differs})


async def _write(session: AsyncSession, booked: Booked, *, seat_no: int) -> None:
    """The hold's row made the booking (every column but its id), with its history row,
    its messages and its ``booking.created`` event."""
    appointment = booked.appointment
    vars(appointment)["seat_no"] = seat_no
    values = {
        column.key: vars(appointment)[column.key]
        for column in _APPOINTMENTS.columns
        if column.key != "id"
    }
    (event,) = appointment.events  # its "created" entry
    history = {column.key: vars(event)[column.key] for column in _EVENTS.columns}
    created = announce.event(EventType.BOOKING_CREATED, appointment, now=appointment.created_at)
    try:
        await change.write(
            session,
            change.Change(appointment, values, history),
            create.messages_of([booked]),
            announced=created,
        )
    except IntegrityError as exc:  # a writer without the locks took the time meanwhile
        raise_for_constraint(exc)
