"""Teams: providers offering services together, booked round robin or collectively."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from slotwise.db import Base, TimestampMixin


class TeamMode(StrEnum):
    ROUND_ROBIN = "round_robin"  # open while any member is free; booked with one of them
    COLLECTIVE = "collective"  # open while every member is free; booked with all of them


class Team(TimestampMixin, Base):
    """A team: its public handle, and the account that owns it (it, or an admin, manages
    the team; its members are providers, who need not be the owner)."""

    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    public_handle: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )


class TeamMember(TimestampMixin, Base):
    """A provider in a team. Round robin gives a booking to the member with the fewest
    bookings of the team's service in the period, per unit of ``weight``; ties go to the
    higher ``priority``."""

    __tablename__ = "team_members"
    __table_args__ = (
        CheckConstraint("weight BETWEEN 1 AND 100", name="weight_in_range"),
        CheckConstraint("priority BETWEEN -100 AND 100", name="priority_in_range"),
    )

    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    provider_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    priority: Mapped[int] = mapped_column(default=0)
    weight: Mapped[int] = mapped_column(default=1)


class TeamService(TimestampMixin, Base):
    """A service the team offers: each member offers it as a service of their own (a
    ``services`` row naming this one), from which their slots and bookings follow as for
    any service of theirs."""

    __tablename__ = "team_services"
    __table_args__ = (
        CheckConstraint("duration_minutes BETWEEN 5 AND 720", name="duration_in_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    mode: Mapped[TeamMode] = mapped_column(
        Enum(
            TeamMode,
            name="team_mode",
            native_enum=False,
            length=20,
            values_callable=lambda members: [m.value for m in members],
        )
    )
    duration_minutes: Mapped[int]
    buffer_before_minutes: Mapped[int] = mapped_column(default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(default=0)
    slot_interval_minutes: Mapped[int | None] = mapped_column(default=None)
    is_active: Mapped[bool] = mapped_column(default=True)


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


class TeamInvitation(TimestampMixin, Base):
    """A team's invitation to a provider: the provider accepting it joins the team (their
    consent to its booking their time), with the ``priority`` and ``weight`` it names. One
    pending invitation per team and provider (a partial unique index)."""

    __tablename__ = "team_invitations"
    __table_args__ = (
        CheckConstraint("weight BETWEEN 1 AND 100", name="weight_in_range"),
        CheckConstraint("priority BETWEEN -100 AND 100", name="priority_in_range"),
        Index(
            "uq_team_invitations_pending",
            "team_id",
            "provider_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    provider_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    priority: Mapped[int] = mapped_column(default=0)
    weight: Mapped[int] = mapped_column(default=1)
    status: Mapped[InvitationStatus] = mapped_column(
        Enum(
            InvitationStatus,
            name="invitation_status",
            native_enum=False,
            length=20,
            values_callable=lambda members: [m.value for m in members],
        ),
        default=InvitationStatus.PENDING,
    )
    responded_at: Mapped[datetime | None] = mapped_column(default=None)
