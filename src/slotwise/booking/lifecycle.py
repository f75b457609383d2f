"""Changes of status: confirm, decline, cancel, complete, no-show; and notes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking import access as access_rules
from slotwise.booking import change, publish, repository, waitlist
from slotwise.booking.access import Access
from slotwise.booking.errors import (
    InvalidTransition,
    NotAllowed,
    NotStarted,
    PolicyWindowClosed,
)
from slotwise.booking.events import ActorRole
from slotwise.booking.models import HOLDING_STATUSES, Appointment, ClientStanding, Status
from slotwise.errors import AppError
from slotwise.notifications import outbox
from slotwise.providers.models import Provider
from slotwise.scheduling import Interval
from slotwise.users.models import User

TRANSITIONS: dict[Status, frozenset[Status]] = {
    # A held guest booking is kept by its email's verification (booking.guests), not here.
    Status.PENDING_VERIFICATION: frozenset({Status.CANCELLED}),
    Status.PENDING: frozenset({Status.CONFIRMED, Status.DECLINED, Status.CANCELLED}),
    Status.CONFIRMED: frozenset({Status.CANCELLED, Status.COMPLETED, Status.NO_SHOW}),
}
PROVIDER_SIDE = (ActorRole.PROVIDER, ActorRole.ADMIN)


def check_transition(appointment: Appointment, to: Status) -> None:
    if to not in TRANSITIONS.get(appointment.status, frozenset()):
        raise InvalidTransition(details={"from": appointment.status.value, "to": to.value})


def check_window(access: Access, provider: Provider, *, now: datetime) -> None:
    """Clients and guests may not cancel or reschedule inside the cancellation window."""
    if not access.is_client_side:
        return
    closes_at = access.appointment.start_at - timedelta(
        minutes=provider.cancellation_window_minutes
    )
    if now >= closes_at:
        raise PolicyWindowClosed(
            details={
                "cancellation_window_minutes": provider.cancellation_window_minutes,
                "closed_at": closes_at.astimezone(
                    ZoneInfo(access.appointment.timezone)
                ).isoformat(),
            }
        )


def move(
    access: Access, to: Status, *, now: datetime, reason: str | None, **values: Any
) -> change.Change:
    """The status change (with ``values``, more of the row's new values), applied to the
    loaded appointment; the caller writes it."""
    appointment = access.appointment
    check_transition(appointment, to)
    before = appointment.status
    return change.apply(
        appointment,
        {"status": to, "sequence": appointment.sequence + 1, **values},
        actor=access.actor,
        role=access.role,
        action="status_changed",
        now=now,
        from_status=before.value,
        to_status=to.value,
        reason=reason,
    )


async def _write_status_changed(
    session: AsyncSession,
    access: Access,
    moved: change.Change,
    *,
    before: Status,
    offsets: Sequence[int],
    now: datetime,
    hand_on: bool = True,
) -> Appointment:
    messages = _status_messages(access, before=before, offsets=offsets, now=now)
    await change.write(session, moved, messages)
    if hand_on:
        await hand_on_freed(session, moved.appointment, before=before, now=now)
    called_off = moved.appointment.status in (Status.CANCELLED, Status.DECLINED)
    if called_off and moved.appointment.team_booking_id is not None:
        await _call_off_team_booking(
            session, access, reason=moved.appointment.cancel_reason, now=now
        )
    return moved.appointment


def _status_messages(
    access: Access, *, before: Status, offsets: Sequence[int], now: datetime
) -> outbox.Batch:
    """The messages of a change of status already applied to ``access``'s appointment."""
    messages = outbox.Batch()
    outbox.add_status_changed(
        messages, booking=publish.acted_facts(access), before=before, offsets=offsets, now=now
    )
    return messages


async def _call_off_team_booking(
    session: AsyncSession, access: Access, *, reason: str | None, now: datetime
) -> None:
    """A collective team booking stands or falls whole (``slotwise.teams``): its other
    members' rows are cancelled with the one cancelled or declined, in this transaction,
    by the same actor. Each member hears of theirs; the client heard of the one changed."""
    team_booking_id = access.appointment.team_booking_id
    assert team_booking_id is not None
    for found in await repository.team_rows(session, team_booking_id, lock=True):
        other = found.appointment
        if other.id == access.appointment.id or other.status not in HOLDING_STATUSES:
            continue
        sibling = replace(
            access,
            appointment=other,
            provider=found.provider,
            client=found.client,
            service_name=found.service_name,
        )
        before = other.status
        moved = _cancellation(sibling, reason=reason, now=now)
        messages = _status_messages(sibling, before=before, offsets=(), now=now)
        messages.rows = [
            m for m in messages.rows if m["context"].get("recipient_role") == "provider"
        ]
        await change.write(session, moved, messages)
        await hand_on_freed(session, moved.appointment, before=before, now=now)


async def hand_on_freed(
    session: AsyncSession, appointment: Appointment, *, before: Status, now: datetime
) -> None:
    """An appointment that took time and no longer does (cancelled, declined): its time
    goes to the first in its waitlist, in this transaction (``booking.waitlist``)."""
    if freed := _freed(appointment, before=before):
        await waitlist.promote(session, {appointment.provider_id: [freed]}, now=now)


def _freed(appointment: Appointment, *, before: Status) -> Interval | None:
    """The blocked span an appointment that took time and no longer does freed."""
    if before in HOLDING_STATUSES and appointment.status not in HOLDING_STATUSES:
        return Interval(appointment.blocked_start_at, appointment.blocked_end_at)
    return None


async def set_status(
    session: AsyncSession,
    access: Access,
    *,
    to: Status,
    reason: str | None,
    reminder_offsets: Sequence[int],
    now: datetime,
) -> Appointment:
    """PATCH /status: the provider confirms or declines (cancelling is `cancel`, through
    the booking queue: ``cancel_each``). A confirmation queues reminders
    ``reminder_offsets`` minutes before the start."""
    assert to is not Status.CANCELLED, "a cancellation goes through the booking queue"
    if access.role not in PROVIDER_SIDE:
        raise NotAllowed("Only the provider or an admin can confirm or decline.")
    before = access.appointment.status
    moved = move(access, to, now=now, reason=reason)
    return await _write_status_changed(
        session, access, moved, before=before, offsets=reminder_offsets, now=now
    )


async def cancel(
    session: AsyncSession,
    access: Access,
    provider: Provider,
    *,
    reason: str | None,
    now: datetime,
    hand_on: bool = True,
) -> Appointment:
    """``hand_on``: the freed time goes to its waitlist (not when the provider cancels a
    whole group session: `sessions.cancel` ends its waitlist instead)."""
    check_cancel(access, provider, now=now)
    return await _write_cancel(session, access, reason=reason, now=now, hand_on=hand_on)


def check_cancel(access: Access, provider: Provider, *, now: datetime) -> None:
    """May the caller cancel the appointment now? (Its status, the provider's window.)"""
    check_transition(access.appointment, Status.CANCELLED)
    check_window(access, provider, now=now)


def _cancellation(access: Access, *, reason: str | None, now: datetime) -> change.Change:
    return move(access, Status.CANCELLED, now=now, reason=reason, cancel_reason=reason)


async def _write_cancel(
    session: AsyncSession, access: Access, *, reason: str | None, now: datetime, hand_on: bool
) -> Appointment:
    before = access.appointment.status
    moved = _cancellation(access, reason=reason, now=now)
    return await _write_status_changed(
        session,
        access,
        moved,
        before=before,
        offsets=(),  # a cancelled appointment has no reminders
        now=now,
        hand_on=hand_on,
    )


@dataclass(frozen=True, slots=True)
class Cancellation:
    """A signed-in caller's cancellation of an appointment, as the booking queue carries it."""

    user: User
    appointment_id: uuid.UUID
    reason: str | None
    now: datetime


async def cancel_each(
    session: AsyncSession,
    asked: Sequence[Cancellation],
    found: Mapping[uuid.UUID, repository.Found],
) -> list[Appointment | AppError]:
    """Cancellations made together (the booking queue's), each as ``cancel`` makes one,
    in the session's transaction: for each, the appointment cancelled, or the refusal
    (nothing written for it). ``found``: the appointments, with the other rows of their
    collective team bookings, read and locked by the caller, with every lock the
    transaction will take as it goes (``booking.queue``: so that handing on a freed time
    never waits, holding one provider's lock, for another's). Each is decided and written
    in turn: one of an appointment an earlier one cancelled (itself, or a row of its team
    booking) is refused as it would be after it (InvalidTransition). The times they free
    are then handed on together (one look at the waitlists of all their providers, then
    each provider's hand-over in the order of their ids); a team booking's other rows hand
    theirs on as they are cancelled.

    Each change is applied to its loaded appointment as it is decided, so the next
    decision sees it; the writes of those outside team bookings are gathered and written
    together (``change.write_each``: one statement on PostgreSQL), before a team
    booking's (which reads and locks its other rows) and at the end."""
    answers: list[Appointment | AppError] = []
    freed: dict[uuid.UUID, list[Interval]] = {}
    latest: datetime | None = None  # the hand-on's time: the latest cancellation's
    gathered: list[tuple[change.Change, outbox.Batch]] = []
    for one in asked:
        try:
            access = await access_rules.of_found(session, found.get(one.appointment_id), one.user)
            check_cancel(access, access.provider, now=one.now)
        except AppError as refusal:
            answers.append(refusal)
            continue
        before = access.appointment.status
        if access.appointment.team_booking_id is None:
            moved = _cancellation(access, reason=one.reason, now=one.now)
            messages = _status_messages(access, before=before, offsets=(), now=one.now)
            gathered.append((moved, messages))
            cancelled = moved.appointment
        else:
            await change.write_each(session, gathered, lines=True)
            gathered = []
            cancelled = await _write_cancel(
                session, access, reason=one.reason, now=one.now, hand_on=False
            )
        if span := _freed(cancelled, before=before):
            freed.setdefault(cancelled.provider_id, []).append(span)
            latest = one.now if latest is None else max(latest, one.now)
        answers.append(cancelled)
    await change.write_each(session, gathered, lines=True)
    if freed:
        assert latest is not None
        await waitlist.promote(session, freed, now=latest)
    return answers


async def mark_finished(
    session: AsyncSession, access: Access, *, to: Status, now: datetime, block_after: int
) -> Appointment:
    """Completed or no-show: the provider or an admin, once the appointment has started."""
    if access.role not in PROVIDER_SIDE:
        raise NotAllowed("Only the provider or an admin can mark an appointment.")
    appointment = access.appointment
    check_transition(appointment, to)
    if now < appointment.start_at:
        local_start = appointment.start_at.astimezone(ZoneInfo(appointment.timezone))
        raise NotStarted(details={"start_at": local_start.isoformat()})
    await change.write(session, move(access, to, now=now, reason=None))
    if to is Status.NO_SHOW:
        await _count_no_show(session, appointment.client_key, block_after=block_after, now=now)
    await session.flush()
    return appointment


async def _count_no_show(
    session: AsyncSession, email: str, *, block_after: int, now: datetime
) -> None:
    standing = await session.get(ClientStanding, email, with_for_update=True)
    if standing is None:
        standing = ClientStanding(
            email=email, no_show_count=0, blocked=False, created_at=now, updated_at=now
        )
        session.add(standing)
    standing.no_show_count += 1
    standing.updated_at = now
    if standing.no_show_count >= block_after:
        standing.blocked = True


async def update_notes(
    session: AsyncSession, access: Access, *, notes: str | None, now: datetime
) -> Appointment:
    noted = change.apply(
        access.appointment,
        {"notes": notes},
        actor=access.actor,
        role=access.role,
        action="notes_updated",
        now=now,
    )
    await change.write(session, noted)
    return noted.appointment
