"""Recurring series: a client (or guest) books every N weeks in one request; the series is
read, cut short ("this and following") and confirmed or declined as one.

Booking a series is the booking pipeline's own two steps, per occurrence: the decision
(``scheduling.decide``, each occurrence a single booking's request for its date:
``scheduling.series``), then the write (``write.take_series``: one judgment under one set
of locks, each occurrence counting what the ones before it take). All or nothing by
default; with ``on_conflict: "skip"`` the free ones. Each occurrence is an ordinary
appointment (own status, history, reminders, webhook event ``booking.created``); the
series is mailed as one (one message per party, with the series' calendar invitation).
A single occurrence is cancelled or moved by the appointment routes; a moved one keeps
its ``recurrence_at`` (the calendar's RECURRENCE-ID).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.auth import tokens
from slotwise.booking import change, create, lifecycle, publish, repository, write
from slotwise.booking.access import Access
from slotwise.booking.errors import (
    InvalidTransition,
    NotAllowed,
    PolicyWindowClosed,
    SeriesNotFound,
    SeriesTooLong,
    SeriesUnavailable,
    TermsChanged,
    refused,
)
from slotwise.booking.events import ActorRole
from slotwise.booking.guests import GuestPolicy, check_held, keep_held
from slotwise.booking.models import (
    HOLDING_STATUSES,
    Appointment,
    AppointmentSeries,
    Status,
)
from slotwise.booking.schemas import AppointmentCreate, SeriesCreate
from slotwise.booking.terms import ATTEMPTS, TermsCache
from slotwise.notifications import outbox
from slotwise.scheduling import Reason, Refusal
from slotwise.users.models import Role, User

# Refusals no occurrence escapes: answered as a single booking's.
WHOLE_SERIES = frozenset(
    {
        Reason.PROVIDER_NOT_FOUND,
        Reason.CANNOT_BOOK_YOURSELF,
        Reason.PROVIDER_NOT_ACCEPTING,
        Reason.SERVICE_NOT_FOUND,
        Reason.DURATION_MISMATCH,
        Reason.CLIENT_BLOCKED,
    }
)


@dataclass(frozen=True, slots=True)
class Skipped:
    index: int
    start_at: datetime
    refusal: Refusal


@dataclass(frozen=True, slots=True)
class SeriesBooked:
    series: AppointmentSeries
    occurrences: list[Appointment]
    skipped: list[Skipped]
    manage_token: str | None  # guests only: shown once


async def book(
    session: AsyncSession,
    *,
    kept_terms: TermsCache,
    user: User | None,
    data: SeriesCreate,
    now: datetime,
    guests: GuestPolicy,
) -> SeriesBooked:
    """The series in the session's transaction: every occurrence decided on the provider's
    terms, then judged and written together. Kept terms that refuse an occurrence or prove
    stale are read again, and the series decided again."""
    client_key = create.check_caller(user, data)
    asked = AppointmentCreate.model_construct(
        provider_id=data.provider_id,
        start_datetime=data.start_datetime,
        end_datetime=None,
        service_id=data.service_id,
        notes=data.notes,
        guest_details=data.guest_details,
    )
    fresh = False
    for _ in range(ATTEMPTS):
        known, kept = await kept_terms.get(session, data.provider_id, now=now, fresh=fresh)
        terms = known.terms
        pattern, recurrences = _rule(terms.zone, data)
        requests = scheduling.occurrence_requests(
            data.start_datetime,
            pattern,
            service_id=data.service_id,
            by=user.id if user is not None else None,
        )
        decided = [scheduling.decide(terms, request, now=now) for request in requests]
        refusals = [outcome for outcome in decided if isinstance(outcome, Refusal)]
        if refusals and kept:
            fresh = True  # kept terms may be stale: a refusal is given on fresh ones only
            continue
        for refusal in refusals:
            if refusal.reason in WHOLE_SERIES:
                raise refused(refusal)
        series_id = uuid.uuid4()
        placed: list[tuple[int, create.Booked]] = []
        rows: list[write.Row] = []
        for index, outcome in enumerate(decided):
            if isinstance(outcome, Refusal):
                continue
            proposal = scheduling.Proposal(
                terms=terms,
                placement=outcome,
                client_key=client_key,
                counted_per_client=user is None or terms.limits.per_client is not None,
            )
            booked = create.new_booking(
                known, proposal, user=user, data=asked, now=now, guests=guests
            )
            # An occurrence: its series, its rule's instant; managed (and, held, verified)
            # by the series' tokens.
            vars(booked.appointment).update(
                series_id=series_id,
                recurrence_at=recurrences[index],
                manage_token_hash=None,
                verify_token_hash=None,
            )
            placed.append((index, booked))
            rows.append(create.row_of(session, booked, proposal, guests, mailed=False))
        outcomes = await write.take_series(
            session, rows, all_or_nothing=data.on_conflict == "fail", refused_before=bool(refusals)
        )
        found = {o.reason for o in outcomes if o is not None}
        if Reason.TERMS_CHANGED in found:
            fresh = True
            continue
        if Reason.CLIENT_BLOCKED in found:
            raise refused(Refusal(Reason.CLIENT_BLOCKED))
        by_index: dict[int, Refusal | None] = dict.fromkeys(range(len(decided)))
        for index, outcome in enumerate(decided):
            if isinstance(outcome, Refusal):
                by_index[index] = outcome
        for (index, _), written in zip(placed, outcomes, strict=True):
            by_index[index] = written
        skipped = [
            Skipped(index, _shown_start(requests[index], recurrences[index], terms.zone), why)
            for index, why in by_index.items()
            if why is not None
        ]
        booked_now = [b for (index, b) in placed if by_index[index] is None]
        if (skipped and data.on_conflict == "fail") or not booked_now:
            raise SeriesUnavailable(details={"occurrences": [_skipped(s) for s in skipped]})
        return await _record(
            session, data, user, known.timezone, pattern, series_id, booked_now, skipped, guests
        )
    raise TermsChanged()


def _rule(zone: ZoneInfo, data: SeriesCreate) -> tuple[scheduling.Pattern, list[datetime | None]]:
    """The series' rule and the instant it gives each occurrence (None where the zone's
    calendar cannot hold it: that occurrence is refused by the decision anyway)."""
    try:
        pattern = scheduling.pattern_of(
            data.start_datetime,
            zone,
            every_weeks=data.every_weeks,
            count=data.count,
            until=data.until,
        )
        walls = pattern.wall_times()
    except scheduling.SeriesTooLong:
        raise SeriesTooLong(details={"max_occurrences": scheduling.MAX_OCCURRENCES}) from None
    except OverflowError:  # past the calendar's end: no slot is offered there
        raise refused(Refusal(Reason.OUTSIDE_AVAILABILITY)) from None
    recurrences: list[datetime | None] = []
    for wall in walls:
        try:
            recurrences.append(scheduling.resolve_wall_time(wall.date(), wall.time(), zone))
        except scheduling.OutOfRange:
            recurrences.append(None)
    return pattern, recurrences


def _shown_start(request: scheduling.Request, rule_at: datetime | None, zone: ZoneInfo) -> datetime:
    """Where an occurrence was asked, with the provider's offset."""
    try:
        at = scheduling.read_instant(request.start_time, zone)
    except (scheduling.OutOfRange, OverflowError):
        at = rule_at or request.start_time
    return at.astimezone(zone) if at.tzinfo is not None else at


def _skipped(skipped: Skipped) -> dict[str, Any]:
    details = dict(skipped.refusal.details) or None
    return {
        "index": skipped.index,
        "start_at": skipped.start_at.isoformat(),
        "code": skipped.refusal.reason.value,
        "details": details,
    }


async def _record(
    session: AsyncSession,
    data: SeriesCreate,
    user: User | None,
    timezone: str,
    pattern: scheduling.Pattern,
    series_id: uuid.UUID,
    booked: list[create.Booked],
    skipped: list[Skipped],
    guests: GuestPolicy,
) -> SeriesBooked:
    """The series' own row, and its messages: one per party, reminders per occurrence. A
    guest's series carries its manage link (where the application mails one); held until
    the guest verifies the email, its one message is the series' verification link (the
    provider hears of it, and reminders are queued, once it is kept: ``verify``)."""
    first = booked[0].appointment
    guest = data.guest_details
    manage_token = tokens.new_secret_token() if guest is not None else None
    held = first.status is Status.PENDING_VERIFICATION  # all are, or none
    verify_token = tokens.new_secret_token() if held else None
    series = AppointmentSeries(
        id=series_id,
        provider_id=first.provider_id,
        service_id=first.service_id,
        client_id=first.client_id,
        client_key=first.client_key,
        guest_name=first.guest_name,
        guest_email=first.guest_email,
        guest_phone=first.guest_phone,
        timezone=timezone,
        first_date=pattern.first_time.date(),
        wall_time=pattern.first_time.time(),
        duration_minutes=int((first.end_at - first.start_at).total_seconds() // 60),
        every_weeks=pattern.every_weeks,
        count=pattern.count,
        until_date=data.until,
        sequence=0,
        manage_token_hash=tokens.fingerprint(manage_token) if manage_token else None,
        verify_token_hash=tokens.fingerprint(verify_token) if verify_token else None,
        created_at=first.created_at,
        updated_at=first.created_at,
    )
    session.add(series)
    rule = publish.series_facts(series)
    link = outbox.manage_url(guests.mailing.guest_series_manage_url, manage_token)
    facts = [publish.facts(b.appointment, b.parties, series=rule, manage_url=link) for b in booked]
    messages = outbox.Batch()
    if verify_token is not None:
        outbox.add_series_held(
            messages,
            occurrences=facts,
            verify_url=guests.series_link(verify_token),
            now=first.created_at,
        )
    else:
        outbox.add_series_booked(
            messages,
            guests.mailing.reminder_offsets_minutes,
            occurrences=facts,
            everything=facts,
            now=first.created_at,
        )
    await messages.write(session)  # flushes the series' row first
    return SeriesBooked(
        series=series,
        occurrences=[b.appointment for b in booked],
        skipped=skipped,
        manage_token=manage_token,
    )


async def verify(
    session: AsyncSession, *, token: str, reminder_offsets: Sequence[int], now: datetime
) -> SeriesAccess:
    """The guest followed the series' verification link: every held occurrence is kept at
    once, as a single held booking is (``guests.keep_held``), and the series' messages go out
    (one per party, reminders per occurrence). Following it again answers the series as it
    is; after the hold ended, 409 ``verification_expired``; an unknown token, 404."""
    series = await session.scalar(
        select(AppointmentSeries).where(
            AppointmentSeries.verify_token_hash == tokens.fingerprint(token)
        )
    )
    if series is None:
        raise SeriesNotFound()
    acting = await _as_guest(session, series, lock=True)
    if not check_held([found.appointment for found in acting.occurrences], now=now):
        return acting  # verified already (a second click)
    kept: list[Access] = []
    for found in acting.occurrences:
        if found.appointment.status is Status.PENDING_VERIFICATION:
            await change.write(session, keep_held(found, now=now))
            kept.append(acting.access(found))
    everything = [publish.acted_facts(acting.access(found)) for found in acting.occurrences]
    messages = outbox.Batch()
    outbox.add_series_booked(
        messages,
        reminder_offsets,
        occurrences=[publish.acted_facts(access) for access in kept],
        everything=everything,
        now=now,
    )
    await messages.write(session)
    return acting


# -- a series that exists: who acts on it, and what they may do -------------------------------


@dataclass(frozen=True, slots=True)
class SeriesAccess:
    """A series, the caller's capacity on it, and its occurrences (each as the appointment
    routes find one)."""

    series: AppointmentSeries
    actor: User | None
    role: ActorRole
    occurrences: list[repository.Found]

    @property
    def is_client_side(self) -> bool:
        return self.role in (ActorRole.CLIENT, ActorRole.GUEST)

    def access(self, found: repository.Found) -> Access:
        appointment, provider, client, service_name = found
        return Access(
            appointment, self.actor, self.role, provider, client, service_name, self.series
        )


async def for_user(
    session: AsyncSession, *, user: User, series_id: uuid.UUID, lock: bool = False
) -> SeriesAccess:
    """The series as its client, its provider or an admin sees it; anyone else: 404."""
    series = await session.get(AppointmentSeries, series_id)
    if series is None:
        raise SeriesNotFound()
    occurrences = await repository.series_occurrences(session, series.id, lock=lock)
    if not occurrences:
        raise SeriesNotFound()
    provider = occurrences[0].provider
    if user.role is Role.ADMIN:
        role = ActorRole.ADMIN
    elif series.client_id is not None and series.client_id == user.id:
        role = ActorRole.CLIENT
    elif user.role is Role.PROVIDER and provider.user_id == user.id:
        role = ActorRole.PROVIDER
    else:
        raise SeriesNotFound()
    return SeriesAccess(series, user, role, occurrences)


async def for_guest_token(session: AsyncSession, *, token: str, lock: bool = False) -> SeriesAccess:
    series = await session.scalar(
        select(AppointmentSeries).where(
            AppointmentSeries.manage_token_hash == tokens.fingerprint(token)
        )
    )
    if series is None:
        raise SeriesNotFound()
    return await _as_guest(session, series, lock=lock)


async def _as_guest(
    session: AsyncSession, series: AppointmentSeries, *, lock: bool
) -> SeriesAccess:
    occurrences = await repository.series_occurrences(session, series.id, lock=lock)
    return SeriesAccess(series, None, ActorRole.GUEST, occurrences)


_CANCELLABLE = frozenset(HOLDING_STATUSES)


async def cancel_following(
    session: AsyncSession,
    acting: SeriesAccess,
    *,
    from_appointment_id: uuid.UUID | None,
    reason: str | None,
    now: datetime,
) -> SeriesAccess:
    """Cancel an occurrence and every one after it in the rule's order (moved ones
    included), or, with no occurrence given, every upcoming one (for clients, those whose
    cancellation window is still open). One history row each; one message per party."""
    occurrences = acting.occurrences
    if from_appointment_id is not None:
        start = next((f for f in occurrences if f.appointment.id == from_appointment_id), None)
        if start is None:
            raise SeriesNotFound("No such occurrence in this series.")
        lifecycle.check_transition(start.appointment, Status.CANCELLED)
        lifecycle.check_window(acting.access(start), start.provider, now=now)
        first_at = _order(start.appointment)
        chosen = [
            f
            for f in occurrences
            if _order(f.appointment) >= first_at and f.appointment.status in _CANCELLABLE
        ]
    else:
        chosen = [f for f in occurrences if _open(acting, f, now)]
        if not chosen:
            raise InvalidTransition(
                "No upcoming occurrence of this series can be cancelled.",
                details={"to": Status.CANCELLED.value},
            )
    changed: list[Access] = []
    for found in chosen:
        access = acting.access(found)
        before = found.appointment.status
        moved = lifecycle.move(
            access, Status.CANCELLED, now=now, reason=reason, cancel_reason=reason
        )
        await change.write(session, moved)
        await lifecycle.hand_on_freed(session, access.appointment, before=before, now=now)
        changed.append(access)
    await _tell(session, acting, changed, now=now, offsets=())
    return acting


def _order(appointment: Appointment) -> datetime:
    return appointment.recurrence_at or appointment.start_at


def _open(acting: SeriesAccess, found: repository.Found, now: datetime) -> bool:
    appointment = found.appointment
    if appointment.status not in _CANCELLABLE or appointment.start_at <= now:
        return False
    if not acting.is_client_side:
        return True
    try:
        lifecycle.check_window(acting.access(found), found.provider, now=now)
    except PolicyWindowClosed:  # this one stays
        return False
    return True


async def set_status(
    session: AsyncSession,
    acting: SeriesAccess,
    *,
    to: Status,
    reason: str | None,
    reminder_offsets: list[int],
    now: datetime,
) -> SeriesAccess:
    """The provider (or an admin) confirms or declines every pending occurrence as one: one
    history row each, one message to the client."""
    if acting.role not in lifecycle.PROVIDER_SIDE:
        raise NotAllowed("Only the provider or an admin can confirm or decline.")
    pending = [f for f in acting.occurrences if f.appointment.status is Status.PENDING]
    if not pending:
        raise InvalidTransition(
            "No occurrence of this series awaits confirmation.", details={"to": to.value}
        )
    changed: list[Access] = []
    for found in pending:
        access = acting.access(found)
        await change.write(session, lifecycle.move(access, to, now=now, reason=reason))
        await lifecycle.hand_on_freed(session, access.appointment, before=Status.PENDING, now=now)
        changed.append(access)
    await _tell(session, acting, changed, now=now, offsets=reminder_offsets)
    return acting


async def _tell(
    session: AsyncSession,
    acting: SeriesAccess,
    changed: list[Access],
    *,
    now: datetime,
    offsets: list[int] | tuple[int, ...],
) -> None:
    """The series' calendar event changes (SEQUENCE + 1); each party hears once."""
    series = acting.series
    series.sequence += 1
    series.updated_at = now
    everything = [publish.acted_facts(acting.access(found)) for found in acting.occurrences]
    told = [publish.acted_facts(access) for access in changed]
    messages = outbox.Batch()
    outbox.add_series_changed(
        messages, changed=told, everything=everything, offsets=offsets, now=now
    )
    await messages.write(session)


async def rotate_manage_token(session: AsyncSession, *, series_id: uuid.UUID) -> str | None:
    """A new manage token for a guest's series (the old one stops working)."""
    series = await session.get(AppointmentSeries, series_id)
    if series is None or series.guest_email is None:
        return None
    token = tokens.new_secret_token()
    series.manage_token_hash = tokens.fingerprint(token)
    await session.flush()
    return token
