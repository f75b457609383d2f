"""Queueing messages: rows in the outbox, added to the caller's session (flush, never commit).

Booking code adds a change's messages to a ``Batch`` and writes it in the transaction of the
change (``Batch.write``, or booking's own write of the change, which sends the batch with the
change's other statements), so a message exists exactly when the change does, and tells what
changed as ``BookingFacts`` (never its ORM rows). Reminders are rows due ``offset`` before the
start (the offsets are the caller's: the application's settings); moving or cancelling an
appointment withdraws its pending reminders (``WITHDRAW_REMINDERS``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Update, bindparam, insert, literal_column, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking.facts import BookingFacts, Party, Status
from slotwise.calendars import entries, ics
from slotwise.db import deferred as deferring
from slotwise.db import table_of
from slotwise.notifications.models import OutboxMessage, OutboxStatus

REMINDER = "reminder"
# The context key of a message's calendar invitation (see add).
INVITATION = "invitation"
# ... and of a guest's manage link: a secret, which the worker removes once the message is
# finished.
MANAGE_URL = "manage_url"
# ... and a held guest booking's verification link: a secret too, removed likewise.
VERIFY_URL = "verify_url"
# A password reset link is one too (its token works for an hour).
RESET_URL = "reset_url"
# A waitlist offer's hold token, and the page it opens: secrets too.
HOLD_TOKEN = "hold_token"  # noqa: S105 (a context key, not a secret)
OFFER_URL = "offer_url"
SECRET_LINKS = frozenset({MANAGE_URL, VERIFY_URL, RESET_URL, HOLD_TOKEN, OFFER_URL})


def new_message_id() -> str:
    return f"<{uuid.uuid4()}@slotwise>"


def manage_url(template: str, token: str | None) -> str | None:
    """A guest's link to manage a booking, when the application mails one (``template``: the
    setting ``guest_manage_url``, with ``{token}``); None for a signed-in client's booking."""
    if not template or token is None:
        return None
    return template.replace("{token}", token)


_INSERT_MESSAGES = insert(table_of(OutboxMessage))  # built once


def _constant(text: str) -> Any:
    """A string constant in the SQL: the statement below is also part of others (booking's
    write of a change), where its only parameter must be the one they share."""
    return literal_column(f"'{text}'")


# The pending reminders of the appointment bound as ``of_appointment``, withdrawn. The status
# is compared as text (``status || ''``), which no index serves: without statistics, SQLite's
# planner would otherwise search the (status, due_at) index, every pending message, rather
# than the appointment's own.
def withdraw_reminders(of: ColumnElement[bool]) -> Update:
    """The UPDATE that withdraws the pending reminders of the appointments ``of`` names."""
    return (
        update(OutboxMessage)
        .where(
            of,
            OutboxMessage.kind == _constant(REMINDER),
            OutboxMessage.status.concat(_constant("")) == _constant(OutboxStatus.PENDING),
        )
        .values(status=_constant(OutboxStatus.CANCELLED))
    )


WITHDRAW_REMINDERS = withdraw_reminders(OutboxMessage.appointment_id == bindparam("of_appointment"))


class Batch:
    """The messages one change queues, written together in one INSERT (``write``), after the
    withdrawal of the reminders it replaces (``withdrawn``: appointments' ids)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.withdrawn: list[uuid.UUID] = []

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

    def withdraw_reminders(self, appointment_id: uuid.UUID) -> None:
        """The appointment's pending reminders are withdrawn before the batch's rows are
        written (so reminders the batch schedules anew are kept)."""
        self.withdrawn.append(appointment_id)

    async def write(self, session: AsyncSession, *, deferred: bool = False) -> None:
        """Into the caller's transaction, after the session's pending changes (so the
        appointment the messages refer to is written before them). ``deferred``: on SQLite,
        sent with the session's next statement (``db.deferred``), for a caller that makes
        one next and reads nothing of these before it."""
        await session.flush()
        connection = await session.connection()
        if self.withdrawn:  # one execution for each appointment
            withdrawn = [{"of_appointment": appointment_id} for appointment_id in self.withdrawn]
            async with deferring(connection, deferred):
                await connection.execute(WITHDRAW_REMINDERS, withdrawn)
        if self.rows:
            async with deferring(connection, deferred):
                await connection.execute(_INSERT_MESSAGES, self.rows)
        self.rows, self.withdrawn = [], []


def _context(booking: BookingFacts, **extra: Any) -> dict[str, Any]:
    parties = booking.parties
    context: dict[str, Any] = {
        "appointment_id": str(booking.appointment_id),
        "title": parties.title,
        "provider_name": parties.provider.name,
        "client_name": parties.client.name,
        "start_at": booking.start_at.isoformat(),
        "end_at": booking.end_at.isoformat(),
        "status": booking.status.value,
        "notes": booking.notes,
    }
    context.update(extra)
    return context


def _invitation(booking: BookingFacts, *, now: datetime, method: ics.Method) -> dict[str, str]:
    return ics.snapshot(entries.entry(booking), stamp_at=now, method=method)


def _both(
    batch: Batch,
    booking: BookingFacts,
    *,
    kind: str,
    now: datetime,
    invitation: dict[str, str] | None = None,
    **extra: Any,
) -> None:
    parties = booking.parties
    for role, party in (("provider", parties.provider), ("client", parties.client)):
        batch.add(
            kind=kind,
            to=party,
            context=_context(booking, recipient_role=role, **extra),
            now=now,
            appointment_id=booking.appointment_id,
            invitation=invitation,
        )


def _schedule_reminders(
    batch: Batch, offsets: Sequence[int], booking: BookingFacts, *, now: datetime
) -> None:
    """One reminder per offset still ahead; an offset already past is skipped, not sent late."""
    for minutes in offsets:
        due_at = booking.start_at - timedelta(minutes=minutes)
        if due_at < now:
            continue
        batch.add(
            kind=REMINDER,
            to=booking.parties.client,
            context=_context(booking, offset_minutes=minutes),
            now=now,
            due_at=due_at,
            appointment_id=booking.appointment_id,
        )


def add_booked(
    batch: Batch, offsets: Sequence[int], *, booking: BookingFacts, now: datetime
) -> None:
    """A new booking's messages, added to ``batch``: the provider hears of it; the client
    gets a confirmation, or word that it awaits the provider's; a guest's carries the
    booking's ``manage_url`` when there is one."""
    batch.add(
        kind="booking_received",
        to=booking.parties.provider,
        context=_context(booking, recipient_role="provider"),
        now=now,
        appointment_id=booking.appointment_id,
    )
    link = {MANAGE_URL: booking.manage_url} if booking.manage_url else {}
    if booking.status is Status.CONFIRMED:
        _confirmed(batch, offsets, booking, now=now, **link)
    else:
        batch.add(
            kind="booking_pending",
            to=booking.parties.client,
            context=_context(booking, recipient_role="client", **link),
            now=now,
            appointment_id=booking.appointment_id,
        )


def add_held(batch: Batch, *, booking: BookingFacts, now: datetime, verify_url: str) -> None:
    """A held guest booking's one message: the link that verifies the guest's email (and
    the manage link, where the application mails one). The provider hears of the booking,
    and the guest gets its confirmation, once it is verified (``enqueue_verified``)."""
    assert booking.hold_until is not None
    link = {MANAGE_URL: booking.manage_url} if booking.manage_url else {}
    batch.add(
        kind="booking_verify",
        to=booking.parties.client,
        context=_context(
            booking,
            recipient_role="client",
            hold_until=booking.hold_until.isoformat(),
            **{VERIFY_URL: verify_url},
            **link,
        ),
        now=now,
        appointment_id=booking.appointment_id,
    )


def add_waitlist_offer(
    batch: Batch,
    *,
    booking: BookingFacts,
    offer_until: datetime,
    hold_token: str,
    offer_url: str | None,
    now: datetime,
) -> None:
    """A waiter's offer: the freed time, held for them until ``offer_until``, with the hold
    token that books it (and the page that does, where the application has one)."""
    batch.add(
        kind="waitlist_offer",
        to=booking.parties.client,
        context=_context(
            booking,
            recipient_role="client",
            hold_until=offer_until.isoformat(),
            **{HOLD_TOKEN: hold_token, OFFER_URL: offer_url},
        ),
        now=now,
    )


def _confirmed(
    batch: Batch, offsets: Sequence[int], booking: BookingFacts, *, now: datetime, **link: str
) -> None:
    batch.add(
        kind="booking_confirmed",
        to=booking.parties.client,
        context=_context(booking, recipient_role="client", **link),
        now=now,
        appointment_id=booking.appointment_id,
        invitation=_invitation(booking, now=now, method=ics.Method.REQUEST),
    )
    _schedule_reminders(batch, offsets, booking, now=now)


def add_status_changed(
    batch: Batch,
    *,
    booking: BookingFacts,
    before: Status,
    offsets: Sequence[int],
    now: datetime,
) -> None:
    """Confirmed, declined or cancelled; other changes send nothing, nor does the end of
    a held guest booking (only the guest heard of it, and ended it)."""
    if before is Status.PENDING_VERIFICATION:
        return
    if booking.status is Status.CONFIRMED:
        _confirmed(batch, offsets, booking, now=now)
    elif booking.status is Status.DECLINED:
        batch.add(
            kind="booking_declined",
            to=booking.parties.client,
            context=_context(booking, recipient_role="client"),
            now=now,
            appointment_id=booking.appointment_id,
        )
    elif booking.status is Status.CANCELLED:
        batch.withdraw_reminders(booking.appointment_id)
        cancellation = None
        if before is Status.CONFIRMED:  # calendars hold the event: remove it
            cancellation = _invitation(booking, now=now, method=ics.Method.CANCEL)
        _both(
            batch,
            booking,
            kind="booking_cancelled",
            now=now,
            invitation=cancellation,
            reason=booking.cancel_reason,
        )


def add_rescheduled(
    batch: Batch,
    *,
    booking: BookingFacts,
    previous_start_at: datetime,
    previous_end_at: datetime,
    before: Status,
    offsets: Sequence[int],
    now: datetime,
) -> None:
    """Both parties hear of the new time; calendars get the update; reminders move."""
    batch.withdraw_reminders(booking.appointment_id)
    # A calendar that holds (or should hold) the event gets the update, same UID.
    held = Status.CONFIRMED in (before, booking.status)
    method = ics.Method.REQUEST if held else None
    _both(
        batch,
        booking,
        kind="booking_rescheduled",
        now=now,
        invitation=_invitation(booking, now=now, method=method) if method else None,
        old_start_at=previous_start_at.isoformat(),
        old_end_at=previous_end_at.isoformat(),
    )
    if booking.status is Status.CONFIRMED:
        _schedule_reminders(batch, offsets, booking, now=now)


async def _enqueue_one(
    session: AsyncSession, kind: str, to: Party, context: dict[str, Any], *, now: datetime
) -> None:
    """One message to one party, outside any booking (an account's, a subscription's, a
    calendar's, a team's)."""
    batch = Batch()
    batch.add(kind=kind, to=to, context=context, now=now)
    await batch.write(session)


async def enqueue_password_reset(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    timezone: str,
    reset_url: str,
    valid_minutes: int,
    now: datetime,
) -> None:
    """A password reset link (``auth.reset.ResetMail``: the app factory hands this to auth,
    which sits below notifications and does not import it)."""
    to = Party(email=email, name=name, timezone=timezone)
    await _enqueue_one(
        session,
        "password_reset",
        to,
        {RESET_URL: reset_url, "valid_minutes": valid_minutes},
        now=now,
    )


async def enqueue_webhook_disabled(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    timezone: str,
    url: str,
    failing_since: datetime,
    now: datetime,
) -> None:
    """A webhook subscription was disabled for failing too long: its owner hears of it."""
    to = Party(email=email, name=name, timezone=timezone)
    await _enqueue_one(
        session,
        "webhook_disabled",
        to,
        {"url": url, "failing_since": failing_since.isoformat()},
        now=now,
    )


async def enqueue_calendar_paused(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    timezone: str,
    calendar: str,
    failing_since: datetime,
    error: str,
    now: datetime,
) -> None:
    """A connected calendar was paused for failing too long: its provider hears of it."""
    to = Party(email=email, name=name, timezone=timezone)
    await _enqueue_one(
        session,
        "calendar_paused",
        to,
        {"calendar": calendar, "failing_since": failing_since.isoformat(), "error": error},
        now=now,
    )


async def enqueue_team_invitation(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    timezone: str,
    team: str,
    team_handle: str,
    invitation_id: str,
    now: datetime,
) -> None:
    """A provider was invited to a team: they hear of it, and how to answer."""
    to = Party(email=email, name=name, timezone=timezone)
    await _enqueue_one(
        session,
        "team_invitation",
        to,
        {"team": team, "team_handle": team_handle, "invitation_id": invitation_id},
        now=now,
    )


# -- recurring series: one message per party for the whole series, reminders per occurrence --


def _series_context(occurrences: Sequence[BookingFacts], **extra: Any) -> dict[str, Any]:
    """A series' messages tell its first occurrence (``start_at``), its rule and every
    occurrence's start (the recipient reads them in their own zone)."""
    first = occurrences[0]
    assert first.series is not None
    context = _context(first, **extra)
    context.update(
        series_id=str(first.series.series_id),
        every_weeks=first.series.every_weeks,
        occurrence_starts=[booking.start_at.isoformat() for booking in occurrences],
    )
    return context


def _series_invitation(
    occurrences: Sequence[BookingFacts], *, now: datetime, method: ics.Method
) -> dict[str, str]:
    return ics.series_snapshot(
        [entries.entry(booking) for booking in occurrences], stamp_at=now, method=method
    )


def add_series_booked(
    batch: Batch,
    offsets: Sequence[int],
    *,
    occurrences: Sequence[BookingFacts],
    everything: Sequence[BookingFacts],
    now: datetime,
) -> None:
    """A new series' messages: the provider hears of it once; the client gets one
    confirmation (with the series' invitation: one event with its rule) or one word that it
    awaits the provider's; each confirmed occurrence gets its reminders. ``occurrences``:
    those booked, by start; ``everything``: what the invitation shows (the same)."""
    first = occurrences[0]
    batch.add(
        kind="series_received",
        to=first.parties.provider,
        context=_series_context(occurrences, recipient_role="provider"),
        now=now,
        appointment_id=first.appointment_id,
    )
    link = {MANAGE_URL: first.manage_url} if first.manage_url else {}
    confirmed = first.status is Status.CONFIRMED
    batch.add(
        kind="series_confirmed" if confirmed else "series_pending",
        to=first.parties.client,
        context=_series_context(occurrences, recipient_role="client", **link),
        now=now,
        appointment_id=first.appointment_id,
        invitation=(
            _series_invitation(everything, now=now, method=ics.Method.REQUEST)
            if confirmed
            else None
        ),
    )
    for booking in occurrences:
        if booking.status is Status.CONFIRMED:
            _schedule_reminders(batch, offsets, booking, now=now)


def add_series_held(
    batch: Batch, *, occurrences: Sequence[BookingFacts], verify_url: str, now: datetime
) -> None:
    """A guest's series held until the email is verified: its one message, to the guest,
    with the one link that keeps every occurrence (and the series' manage link, where the
    application mails one), as a single held booking's (``add_held``). The provider hears
    of the series, and reminders are queued, once it is kept (``add_series_booked``)."""
    first = occurrences[0]
    assert first.hold_until is not None
    link = {MANAGE_URL: first.manage_url} if first.manage_url else {}
    batch.add(
        kind="series_verify",
        to=first.parties.client,
        context=_series_context(
            occurrences,
            recipient_role="client",
            hold_until=first.hold_until.isoformat(),
            **{VERIFY_URL: verify_url},
            **link,
        ),
        now=now,
        appointment_id=first.appointment_id,
    )


def add_series_changed(
    batch: Batch,
    *,
    changed: Sequence[BookingFacts],
    everything: Sequence[BookingFacts],
    offsets: Sequence[int],
    now: datetime,
) -> None:
    """Occurrences of one series confirmed, declined or cancelled together (``changed``, all
    to one status): one message per party, not one per occurrence; the client's calendar
    gets the series again (``everything``: its occurrences as they are now); reminders
    follow each occurrence."""
    first = changed[0]
    status = first.status
    for booking in changed:
        if status is Status.CONFIRMED:
            _schedule_reminders(batch, offsets, booking, now=now)
        else:
            batch.withdraw_reminders(booking.appointment_id)
    invitation = None
    if any(booking.status is Status.CONFIRMED for booking in everything) or status in (
        Status.CANCELLED,
        Status.DECLINED,
    ):
        invitation = _series_invitation(everything, now=now, method=ics.Method.REQUEST)
    kind = {
        Status.CONFIRMED: "series_confirmed",
        Status.DECLINED: "series_declined",
        Status.CANCELLED: "series_cancelled",
    }[status]
    parties = first.parties
    recipients = [("client", parties.client)]
    if status is Status.CANCELLED:
        recipients.append(("provider", parties.provider))
    for role, party in recipients:
        batch.add(
            kind=kind,
            to=party,
            context=_series_context(changed, recipient_role=role, reason=first.cancel_reason),
            now=now,
            appointment_id=first.appointment_id,
            invitation=invitation if role == "client" else None,
        )
