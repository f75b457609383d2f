from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from slotwise.db import Base, TimestampMixin
from slotwise.users.models import User


class Provider(TimestampMixin, Base):
    """A bookable person's public profile and booking rules; one per provider user."""

    __tablename__ = "providers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    public_handle: Mapped[str] = mapped_column(String(40), unique=True)
    specialty: Mapped[str | None] = mapped_column(String(120), index=True)
    bio: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64))
    session_duration_minutes: Mapped[int] = mapped_column(default=60)
    buffer_before_minutes: Mapped[int] = mapped_column(default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(default=0)
    min_notice_minutes: Mapped[int] = mapped_column(default=0)
    max_advance_days: Mapped[int] = mapped_column(default=90)
    slot_interval_minutes: Mapped[int | None] = mapped_column(default=None)
    requires_confirmation: Mapped[bool] = mapped_column(default=True)
    cancellation_window_minutes: Mapped[int] = mapped_column(default=120)
    accepting_bookings: Mapped[bool] = mapped_column(default=True)
    # Guests' bookings are held until the guest follows the link mailed to them.
    verify_guest_email: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Booking limits (None: none): bookings a local day and a local week (Monday to Sunday),
    # and one client's active future bookings with the provider.
    max_bookings_per_day: Mapped[int | None] = mapped_column(default=None)
    max_bookings_per_week: Mapped[int | None] = mapped_column(default=None)
    max_active_bookings_per_client: Mapped[int | None] = mapped_column(default=None)
    # Raised by triggers on every change to the profile, its account, services and hours
    # (migration 0009); never written by the application (see slotwise.booking.terms).
    rules_version: Mapped[int] = mapped_column(BigInteger, server_default="0")

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    @property
    def full_name(self) -> str:
        return self.user.full_name


class Service(TimestampMixin, Base):
    """A bookable offering of a provider (Cal.com's event type): its own length and buffers."""

    __tablename__ = "services"
    __table_args__ = (CheckConstraint("capacity BETWEEN 1 AND 500", name="capacity_in_range"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    duration_minutes: Mapped[int]
    buffer_before_minutes: Mapped[int] = mapped_column(default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(default=0)
    slot_interval_minutes: Mapped[int | None] = mapped_column(default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Seats of one session: 1 is a one-to-one service; more, a group session (a class) whose
    # seats are booked one by one (slotwise.scheduling.seats). 1..500 (migration 0014).
    capacity: Mapped[int] = mapped_column(default=1, server_default="1")
    # A member's share of a team's service (``slotwise.teams``): booked only through the
    # team, listed as any service (migration 0024; no foreign key, as it says why).
    team_service_id: Mapped[uuid.UUID | None] = mapped_column(index=True, default=None)
