"""Queueing messages: rows in the outbox, added to the caller's session (flush, never commit).

Booking code calls these in the transaction of the change, so a message exists exactly when
the change does. Reminders are rows due ``offset`` before the start; moving or cancelling an
appointment withdraws its pending reminders.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking.models import Appointment, Status
from slotwise.calendars import entries, ics
from slotwise.calendars.entries import Parties, Party
from slotwise.config import get_settings
from slotwise.db import table_of
from slotwise.notifications.models import OutboxMessage, OutboxStatus
from slotwise.providers.models import Provider
from slotwise.users.models import User

# The session-info key under which the application puts its reminder offsets
# (main.py gives them to db.Database, which gives them to every session).
REMINDER_OFFSETS_KEY = "slotwise.reminder_offsets_minutes"
REMINDER = "reminder"
# The context key of a message's calendar invitation (see add).
INVITATION = "invitation"
# ... and the session-info key of the guests' manage link template, and the context key of a
# guest's link: a secret, which the worker removes once the message is finished.
GUEST_MANAGE_URL_KEY = "slotwise.guest_manage_url"
MANAGE_URL = "manage_url"
# ... and a held guest booking's verification link: a secret too, removed likewise.
VERIFY_URL = "verify_url"
# A password reset link is one too (its token works for an hour).
RESET_URL = "reset_url"
SECRET_LINKS = frozenset({MANAGE_URL, VERIFY_URL, RESET_URL})


def new_message_id() -> str:
    return f"<{uuid.uuid4()}@slotwise>"


def reminder_offsets(session: AsyncSession) -> list[int]:
    offsets = session.info.get(REMINDER_OFFSETS_KEY)
    if offsets is None:
        offsets = get_settings().reminder_offsets_minutes
    return list(offsets)


def manage_url(session: AsyncSession, token: str | None) -> str | None:
    """A guest's link to manage a booking, when the application mails one (the setting
    ``guest_manage_url``); None for a signed-in client's booking."""
    template = session.info.get(GUEST_MANAGE_URL_KEY)
    if template is None:
        template = get_settings().guest_manage_url
    if not template or token is None:
        return None
    return str(template).replace("{token}", token)


_INSERT_MESSAGES = insert(table_of(OutboxMessage))  # built once


class Batch:
    """The messages one change queues, written together in one INSERT (``write``)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        *,
        kind: str,
        to: Party,
        context: dict[str, Any],
        now: datetime,
        due_at: datetime | None = None,
        appointment_id: uuid.UUID | None = None,
        invitation: dict[str, str] | None = None,
    ) -> None:
        """``invitation``: an iCalendar snapshot (``ics.snapshot``) to attach, rendered when
        the message is sent."""
        if invitation is not None:
            context = {**context, INVITATION: invitation}
        self.rows.append(
            {
                "id": uuid.uuid4(),
                "message_id": new_message_id(),
                "kind": kind,
                "recipient_email": to.email,
                "recipient_name": to.name,
                "recipient_timezone": to.timezone,
                "context": context,
                "ics": None,
                "appointment_id": appointment_id,
                "status": OutboxStatus.PENDING,
                "due_at": due_at or now,
                "attempts": 0,
                "last_error": None,
                "created_at": now,
            }
        )

    async def write(self, session: AsyncSession) -> None:
        """Into the caller's transaction, after the session's pending changes (so the
        appointment the messages refer to is written before them)."""
        await session.flush()
        if self.rows:
            connection = await session.connection()
            await connection.execute(_INSERT_MESSAGES, self.rows)
            self.rows = []


def _context(appointment: Appointment, parties: Parties, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "appointment_id": str(appointment.id),
        "title": parties.title,
        "provider_name": parties.provider.name,
        "client_name": parties.client.name,
        "start_at": appointment.start_at.isoformat(),
        "end_at": appointment.end_at.isoformat(),
        "status": appointment.status.value,
        "notes": appointment.notes,
    }
    context.update(extra)
    return context


def _invitation(
    appointment: Appointment, parties: Parties, *, now: datetime, method: ics.Method
) -> dict[str, str]:
    return ics.snapshot(entries.entry(appointment, parties), stamp_at=now, method=method)


def _both(
    batch: Batch,
    appointment: Appointment,
    parties: Parties,
    *,
    kind: str,
    now: datetime,
    invitation: dict[str, str] | None = None,
    **extra: Any,
) -> None:
    for role, party in (("provider", parties.provider), ("client", parties.client)):
        batch.add(
            kind=kind,
            to=party,
            context=_context(appointment, parties, recipient_role=role, **extra),
            now=now,
            appointment_id=appointment.id,
            invitation=invitation,
        )


def _schedule_reminders(
    batch: Batch,
    offsets: list[int],
    appointment: Appointment,
    parties: Parties,
    *,
    now: datetime,
) -> None:
    """One reminder per offset still ahead; an offset already past is skipped, not sent late."""
    for minutes in offsets:
        due_at = appointment.start_at - timedelta(minutes=minutes)
        if due_at < now:
            continue
        batch.add(
            kind=REMINDER,
            to=parties.client,
            context=_context(appointment, parties, offset_minutes=minutes),
            now=now,
            due_at=due_at,
            appointment_id=appointment.id,
        )


async def _withdraw_reminders(session: AsyncSession, appointment_id: uuid.UUID) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.appointment_id == appointment_id,
            OutboxMessage.kind == REMINDER,
            OutboxMessage.status == OutboxStatus.PENDING,
        )
        .values(status=OutboxStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )


def add_booked(
    batch: Batch,
    offsets: list[int],
    *,
    appointment: Appointment,
    parties: Parties,
    now: datetime,
    manage_url: str | None = None,
) -> None:
    """A new booking's messages, added to ``batch``: the provider hears of it; the client
    gets a confirmation, or word that it awaits the provider's; a guest's carries
    ``manage_url`` when there is one."""
    batch.add(
        kind="booking_received",
        to=parties.provider,
        context=_context(appointment, parties, recipient_role="provider"),
        now=now,
        appointment_id=appointment.id,
    )
    link = {MANAGE_URL: manage_url} if manage_url else {}
    if appointment.status is Status.CONFIRMED:
        _confirmed(batch, offsets, appointment, parties, now=now, **link)
    else:
        batch.add(
            kind="booking_pending",
            to=parties.client,
            context=_context(appointment, parties, recipient_role="client", **link),
            now=now,
            appointment_id=appointment.id,
        )


def add_held(
    batch: Batch,
    *,
    appointment: Appointment,
    parties: Parties,
    now: datetime,
    verify_url: str,
    manage_url: str | None = None,
) -> None:
    """A held guest booking's one message: the link that verifies the guest's email (and
    the manage link, where the application mails one). The provider hears of the booking,
    and the guest gets its confirmation, once it is verified (``enqueue_verified``)."""
    assert appointment.hold_until is not None
    link = {MANAGE_URL: manage_url} if manage_url else {}
    batch.add(
        kind="booking_verify",
        to=parties.client,
        context=_context(
            appointment,
            parties,
            recipient_role="client",
            hold_until=appointment.hold_until.isoformat(),
            **{VERIFY_URL: verify_url},
            **link,
        ),
        now=now,
        appointment_id=appointment.id,
    )


async def enqueue_verified(
    session: AsyncSession, *, appointment: Appointment, provider: Provider, now: datetime
) -> None:
    """A held booking's email is verified: its messages go out as a new booking's do."""
    batch = Batch()
    parties = await entries.parties_of(session, appointment, provider)
    add_booked(batch, reminder_offsets(session), appointment=appointment, parties=parties, now=now)
    await batch.write(session)


def _confirmed(
    batch: Batch,
    offsets: list[int],
    appointment: Appointment,
    parties: Parties,
    *,
    now: datetime,
    **link: str,
) -> None:
    batch.add(
        kind="booking_confirmed",
        to=parties.client,
        context=_context(appointment, parties, recipient_role="client", **link),
        now=now,
        appointment_id=appointment.id,
        invitation=_invitation(appointment, parties, now=now, method=ics.Method.REQUEST),
    )
    _schedule_reminders(batch, offsets, appointment, parties, now=now)


async def enqueue_status_changed(
    session: AsyncSession,
    *,
    appointment: Appointment,
    provider: Provider,
    before: Status,
    now: datetime,
) -> None:
    """Confirmed, declined or cancelled; other changes send nothing, nor does the end of
    a held guest booking (only the guest heard of it, and ended it)."""
    if before is Status.PENDING_VERIFICATION:
        return
    batch = Batch()
    parties = await entries.parties_of(session, appointment, provider)
    if appointment.status is Status.CONFIRMED:
        _confirmed(batch, reminder_offsets(session), appointment, parties, now=now)
    elif appointment.status is Status.DECLINED:
        batch.add(
            kind="booking_declined",
            to=parties.client,
            context=_context(appointment, parties, recipient_role="client"),
            now=now,
            appointment_id=appointment.id,
        )
    elif appointment.status is Status.CANCELLED:
        await _withdraw_reminders(session, appointment.id)
        cancellation = None
        if before is Status.CONFIRMED:  # calendars hold the event: remove it
            cancellation = _invitation(appointment, parties, now=now, method=ics.Method.CANCEL)
        _both(
            batch,
            appointment,
            parties,
            kind="booking_cancelled",
            now=now,
            invitation=cancellation,
            reason=appointment.cancel_reason,
        )
    await batch.write(session)


async def enqueue_rescheduled(
    session: AsyncSession,
    *,
    appointment: Appointment,
    provider: Provider,
    previous_start_at: datetime,
    previous_end_at: datetime,
    before: Status,
    now: datetime,
) -> None:
    """Both parties hear of the new time; calendars get the update; reminders move."""
    batch = Batch()
    parties = await entries.parties_of(session, appointment, provider)
    await _withdraw_reminders(session, appointment.id)
    # A calendar that holds (or should hold) the event gets the update, same UID.
    held = Status.CONFIRMED in (before, appointment.status)
    method = ics.Method.REQUEST if held else None
    _both(
        batch,
        appointment,
        parties,
        kind="booking_rescheduled",
        now=now,
        invitation=_invitation(appointment, parties, now=now, method=method) if method else None,
        old_start_at=previous_start_at.isoformat(),
        old_end_at=previous_end_at.isoformat(),
    )
    if appointment.status is Status.CONFIRMED:
        _schedule_reminders(batch, reminder_offsets(session), appointment, parties, now=now)
    await batch.write(session)


async def enqueue_password_reset(
    session: AsyncSession, *, user: User, reset_url: str, valid_minutes: int, now: datetime
) -> None:
    batch = Batch()
    to = Party(email=user.email, name=user.full_name, timezone=user.timezone or "UTC")
    batch.add(
        kind="password_reset",
        to=to,
        context={RESET_URL: reset_url, "valid_minutes": valid_minutes},
        now=now,
    )
    await batch.write(session)
