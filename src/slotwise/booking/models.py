from __future__ import annotations

import uuid
from datetime import date, datetime, time
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from slotwise.booking.facts import Status as Status  # a plain value, told to other domains
from slotwise.db import Base, TimestampMixin, utcnow

ACTIVE_STATUSES = (Status.PENDING, Status.CONFIRMED)
# What takes time from the provider and the client: the active statuses, a held guest
# booking and a hold (``booking.holds``). Either past its ``hold_until`` is released (a
# guest's booking cancelled, a hold deleted) by the next booking's write of that provider
# or client before it checks (``repository.lock_and_release``), and slot listings ignore
# it: no job needed.
HOLDING_STATUSES = (*ACTIVE_STATUSES, Status.PENDING_VERIFICATION, Status.HELD)
# HOLDING_STATUSES as the partial indexes and constraints write them (migrations 0011, 0014,
# 0018).
_TAKING_TIME = "status IN ('pending', 'confirmed', 'pending_verification', 'held')"
_HELD_ONLY = "status = 'held'"
# A guest's client key: its lower-cased email behind a prefix no account email can carry
# (a colon is not allowed in an unquoted address), so guests are clients among guests only.
GUEST_KEY_PREFIX = "guest:"


def guest_key(email: str) -> str:
    return GUEST_KEY_PREFIX + email.lower()


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        length=20,
        values_callable=lambda members: [m.value for m in members],
    )


class Appointment(TimestampMixin, Base):
    """One booking. ``blocked_*`` is the provider time it takes: the slot widened by buffers.

    No two active appointments of a provider may overlap in blocked time: on PostgreSQL an
    exclusion constraint holds this (see migration 0003); on SQLite the booking transaction
    runs under ``BEGIN IMMEDIATE`` and checks before it writes.
    """

    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint("start_at < end_at", name="start_before_end"),
        CheckConstraint(
            "blocked_start_at <= start_at AND end_at <= blocked_end_at", name="blocked_covers"
        ),
        CheckConstraint("client_id IS NOT NULL OR guest_email IS NOT NULL", name="has_client"),
        Index("ix_appointments_provider_blocked", "provider_id", "blocked_start_at"),
        Index("ix_appointments_client_key_start", "client_key", "start_at"),
        Index("ix_appointments_client_id_start", "client_id", "start_at"),
        Index("ix_appointments_series_recurrence", "series_id", "recurrence_at"),
        CheckConstraint("seat_no BETWEEN 1 AND capacity", name="seat_in_capacity"),
        # At most `capacity` seats of a session take time: the database's own bound on seats,
        # whoever writes (migration 0014).
        Index(
            "uq_appointments_session_seat",
            "session_key",
            "seat_no",
            unique=True,
            postgresql_where=text(_TAKING_TIME),
            sqlite_where=text(_TAKING_TIME),
        ),
        # A holder's live holds with a provider, counted under the booking locks
        # (``booking.write``: HOLD_LIMIT_REACHED).
        Index(
            "ix_appointments_provider_held_by",
            "provider_id",
            "held_by",
            postgresql_where=text(_HELD_ONLY),
            sqlite_where=text(_HELD_ONLY),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="SET NULL")
    )
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    guest_name: Mapped[str | None] = mapped_column(String(200))
    guest_email: Mapped[str | None] = mapped_column(String(320))
    guest_phone: Mapped[str | None] = mapped_column(String(40))
    # Whose time this is, for the client-side overlap rule and the no-show count: an
    # account's email, lower-cased; a guest's is ``guest_key(email)``. A guest's email is
    # never verified, so a guest is never the account of that email (``client_key``).
    client_key: Mapped[str] = mapped_column(String(320))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    blocked_start_at: Mapped[datetime]
    blocked_end_at: Mapped[datetime]
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[Status] = mapped_column(_enum(Status, "appointment_status"), index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    manage_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A held guest booking (pending_verification): when the hold ends, and the fingerprint
    # of the secret mailed to the guest that confirms the email (never the manage token,
    # which the booking's response shows to whoever made it).
    hold_until: Mapped[datetime | None]
    verify_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    # A hold (status held, ``booking.holds``): the fingerprint of its token (the token is
    # shown once, to whoever took the hold), and who holds it: ``user:<id>`` or
    # ``addr:<client address>``. An anonymous hold has no client yet: its ``guest_email`` is
    # '' (``has_client`` asks for one) and its ``client_key`` its own (``hold:<id>``).
    hold_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    held_by: Mapped[str | None] = mapped_column(String(340))
    # The session this row is a seat of: for a group service's seat, the key every seat of
    # that session shares (``scheduling.session_key_for``); for a one-to-one booking its own
    # id. The provider's no-overlap rule holds between rows of different sessions only.
    session_key: Mapped[uuid.UUID]
    seat_no: Mapped[int] = mapped_column(default=1, server_default="1")
    capacity: Mapped[int] = mapped_column(default=1, server_default="1")  # when it was taken
    # iCalendar SEQUENCE: bumped on every change a calendar must see.
    sequence: Mapped[int] = mapped_column(default=0)
    # An occurrence of a recurring series: the series, and the instant its rule gives this
    # occurrence (which a reschedule leaves as it was: the calendar's RECURRENCE-ID). No
    # foreign key (migration 0019 says why): a series goes only with its provider, and so do
    # its occurrences.
    series_id: Mapped[uuid.UUID | None]
    recurrence_at: Mapped[datetime | None]
    # A collective team booking: one row per member, sharing this id (``slotwise.teams``);
    # cancelled together (``lifecycle.cancel``). No foreign key (migration 0024).
    team_booking_id: Mapped[uuid.UUID | None] = mapped_column(index=True, default=None)

    events: Mapped[list[AppointmentEvent]] = relationship(
        order_by="AppointmentEvent.at", lazy="raise", cascade="all, delete-orphan"
    )


class AppointmentSeries(TimestampMixin, Base):
    """A recurring series: its rule (every ``every_weeks`` weeks at ``wall_time`` in the
    provider's ``timezone`` from ``first_date``, ``count`` occurrences; ``until_date`` when it
    was asked by date) and whose it is. Its occurrences are ordinary appointments
    (``Appointment.series_id``), each with its own status, history and reminders."""

    __tablename__ = "appointment_series"
    __table_args__ = (
        CheckConstraint("every_weeks BETWEEN 1 AND 4", name="every_weeks_in_range"),
        CheckConstraint("count BETWEEN 1 AND 52", name="count_in_range"),
        CheckConstraint("client_id IS NOT NULL OR guest_email IS NOT NULL", name="has_client"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="SET NULL")
    )
    client_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    client_key: Mapped[str] = mapped_column(String(320))
    guest_name: Mapped[str | None] = mapped_column(String(200))
    guest_email: Mapped[str | None] = mapped_column(String(320))
    guest_phone: Mapped[str | None] = mapped_column(String(40))
    timezone: Mapped[str] = mapped_column(String(64))
    first_date: Mapped[date]
    wall_time: Mapped[time]
    duration_minutes: Mapped[int]
    every_weeks: Mapped[int]
    count: Mapped[int]
    until_date: Mapped[date | None]
    # iCalendar SEQUENCE of the series' master event (the RRULE), bumped when it changes.
    sequence: Mapped[int] = mapped_column(default=0)
    manage_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A guest's series with a provider that verifies guests' emails: the fingerprint of the
    # one secret mailed for the whole series (its occurrences are held, ``pending_verification``,
    # until the guest follows it: ``series.verify``). Migration 0021.
    verify_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)


class WaitlistStatus(StrEnum):
    WAITING = "waiting"  # in line
    OFFERED = (
        "offered"  # holds an offer: a hold for them, bookable with its token until offer_until
    )
    BOOKED = "booked"  # got the place (booked for them, or booked with the offer's token)
    EXPIRED = "expired"  # the offer ended unused, or the time can no longer be booked
    SKIPPED = "skipped"  # their own rules refused the place (a conflict, a limit)
    LEFT = "left"  # they left the line


class WaitlistMode(StrEnum):
    BOOK = "book"  # a freed place is booked for the waiter at once
    OFFER = "offer"  # a freed place is held for the waiter and offered by email


# Entries still in line: waiting, or holding an offer (migration 0020's partial index).
_IN_LINE = "status IN ('waiting', 'offered')"


class WaitlistEntry(TimestampMixin, Base):
    """A client (or guest) in line for a full slot or session (``booking.waitlist``): the
    placement decided when they joined, their details, and what became of it. Line order
    is ``seq``, numbered per provider under the provider's booking lock."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        CheckConstraint("mode IN ('book', 'offer')", name="mode_known"),
        CheckConstraint(
            "status IN ('waiting', 'offered', 'booked', 'expired', 'skipped', 'left')",
            name="status_known",
        ),
        CheckConstraint("client_id IS NOT NULL OR guest_email IS NOT NULL", name="has_client"),
        UniqueConstraint("provider_id", "seq", name="uq_waitlist_entries_provider_seq"),
        # One place in line per client and slot.
        Index(
            "uq_waitlist_entries_in_line",
            "provider_id",
            "start_at",
            "client_key",
            unique=True,
            postgresql_where=text(_IN_LINE),
            sqlite_where=text(_IN_LINE),
        ),
        Index("ix_waitlist_entries_provider_status", "provider_id", "status", "blocked_start_at"),
        Index("ix_waitlist_entries_offered", "status", "offer_until"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="SET NULL")
    )
    seq: Mapped[int]
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    blocked_start_at: Mapped[datetime]
    blocked_end_at: Mapped[datetime]
    timezone: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    client_key: Mapped[str] = mapped_column(String(320))
    guest_name: Mapped[str | None] = mapped_column(String(200))
    guest_email: Mapped[str | None] = mapped_column(String(320))
    guest_phone: Mapped[str | None] = mapped_column(String(40))
    notes: Mapped[str | None] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))
    # The hold (an offer) or booking it got; no foreign key: a hold's row is deleted.
    appointment_id: Mapped[uuid.UUID | None]
    offer_until: Mapped[datetime | None]  # an offer's end
    reason: Mapped[str | None] = mapped_column(String(40))  # why it was skipped or expired
    manage_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)


class AppointmentEvent(Base):
    """The history of an appointment: who changed what, when, from what, to what, and why."""

    __tablename__ = "appointment_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    appointment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    from_start_at: Mapped[datetime | None]
    to_start_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)


class ClientStanding(TimestampMixin, Base):
    """No-shows per client key (an account's email; a guest's ``guest:`` + email) and the
    booking block."""

    __tablename__ = "client_standings"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    no_show_count: Mapped[int] = mapped_column(default=0)
    blocked: Mapped[bool] = mapped_column(default=False)


class IdempotencyKey(Base):
    """A booking request's Idempotency-Key and the response it got."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    scope: Mapped[str] = mapped_column(String(340))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int]
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
