"""Guests: what a booking without an account may do, and the verification of its email.

A guest's email is never proven by booking, so a guest is its own client (its key is
``models.guest_key(email)``, among guests only): nothing a guest does counts against an
account. A public booking page is guarded by a rate limit per client address (the router),
a cap on the upcoming bookings a guest email holds with one provider (checked in the
booking's write, under its locks: ``booking.write``), and, where the provider asks for
it (``verify_guest_email``), a hold: the booking takes its time as ``pending_verification``
until the guest follows the link mailed to them, and is released when the link expires.
A guest's series is held the same way, every occurrence with one ``hold_until``, and kept by
one link for the whole series (``booking.series.verify``); both keep a held booking by
``keep_held``, after ``check_held``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import tokens
from slotwise.booking import change, publish, repository
from slotwise.booking.errors import AppointmentNotFound, InvalidTransition, VerificationExpired
from slotwise.booking.events import ActorRole
from slotwise.booking.models import ACTIVE_STATUSES, Appointment, Status
from slotwise.config import Settings
from slotwise.notifications import outbox

VERIFY_PATH = "/api/v1/bookings/verify/{token}"
SERIES_VERIFY_PATH = "/api/v1/bookings/series/verify/{token}"


@dataclass(frozen=True, slots=True)
class GuestPolicy:
    """The settings guest bookings are held to."""

    max_active: int = 3  # upcoming bookings of one guest email with one provider
    hold: timedelta = timedelta(minutes=15)  # how long a held booking waits for its email
    verify_url: str = "http://127.0.0.1:8000" + VERIFY_PATH  # with {token}
    series_verify_url: str = "http://127.0.0.1:8000" + SERIES_VERIFY_PATH  # a series' link
    # The mail a new booking sends (carried here because every path that books has this
    # policy at hand: the single, idempotent and batched bookings alike).
    mailing: publish.Mailing = field(default_factory=publish.Mailing)

    @classmethod
    def from_settings(cls, settings: Settings) -> GuestPolicy:
        return cls(
            max_active=settings.guest_max_active_bookings,
            hold=timedelta(minutes=settings.guest_verify_minutes),
            verify_url=settings.public_base_url.rstrip("/") + VERIFY_PATH,
            series_verify_url=settings.public_base_url.rstrip("/") + SERIES_VERIFY_PATH,
            mailing=publish.Mailing.from_settings(settings),
        )

    def link(self, token: str) -> str:
        return self.verify_url.replace("{token}", token)

    def series_link(self, token: str) -> str:
        return self.series_verify_url.replace("{token}", token)


async def verify(
    session: AsyncSession, *, token: str, reminder_offsets: Sequence[int], now: datetime
) -> Appointment:
    """The guest followed the link mailed to them: the held booking becomes a booking like
    any other (awaiting the provider's confirmation, or confirmed), and its messages go out
    (with reminders ``reminder_offsets`` minutes before the start).
    Following it again answers the booking as it is; after the hold ended, 409."""
    found = await repository.get_by_verify_token_hash(session, tokens.fingerprint(token), lock=True)
    if found is None:
        raise AppointmentNotFound()
    appointment = found.appointment
    if not check_held([appointment], now=now):
        return appointment  # verified already (a second click)
    verified = keep_held(found, now=now)
    # Its messages go out now, as a new booking's do.
    booking = publish.facts(
        appointment,
        publish.parties(appointment, found.provider, found.client, found.service_name),
    )
    messages = outbox.Batch()
    outbox.add_booked(messages, reminder_offsets, booking=booking, now=now)
    await change.write(session, verified, messages)
    return appointment


def check_held(appointments: Sequence[Appointment], *, now: datetime) -> bool:
    """Whether a verification link still has bookings to keep: True while some are held
    (``pending_verification``, their hold not ended); False once they are kept (a second
    click). VerificationExpired once the hold ended (released or not yet); InvalidTransition
    when nothing is held any more (the guest or the provider cancelled it)."""
    held = False
    kept = False
    for appointment in appointments:
        if appointment.cancel_reason == repository.HOLD_EXPIRED or (
            appointment.status is Status.PENDING_VERIFICATION
            and (appointment.hold_until is None or appointment.hold_until <= now)
        ):
            raise VerificationExpired()
        held = held or appointment.status is Status.PENDING_VERIFICATION
        kept = kept or appointment.status in ACTIVE_STATUSES
    if held:
        return True
    if kept:
        return False
    status = appointments[-1].status.value if appointments else Status.CANCELLED.value
    raise InvalidTransition(details={"from": status, "to": "verified"})


def keep_held(found: repository.Found, *, now: datetime) -> change.Change:
    """A held booking kept, its guest's email verified: awaiting the provider's
    confirmation, or confirmed (the caller writes it, with its messages)."""
    to = Status.PENDING if found.provider.requires_confirmation else Status.CONFIRMED
    return change.apply(
        found.appointment,
        {"status": to, "hold_until": None},
        actor=None,
        role=ActorRole.GUEST,
        action="email_verified",
        now=now,
        from_status=Status.PENDING_VERIFICATION.value,
        to_status=to.value,
    )
