from __future__ import annotations

import uuid
from datetime import date, datetime, time

from sqlalchemy import JSON, CheckConstraint, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from slotwise.db import Base, TimestampMixin
from slotwise.scheduling import OverrideKind

# An end time of 00:00 is the midnight that ends the day. One text for both databases: on
# PostgreSQL both literals are the time 00:00; SQLite stores times as "00:00:00.000000".
MIDNIGHT_OR_AFTER_START = (
    "start_time < end_time OR end_time = '00:00:00' OR end_time = '00:00:00.000000'"
)


class WeeklyPattern(TimestampMixin, Base):
    """Recurring hours: a wall-clock range on one day of the week, in the provider's zone."""

    __tablename__ = "weekly_patterns"
    __table_args__ = (
        CheckConstraint("day_of_week BETWEEN 0 AND 6", name="day_of_week_range"),
        CheckConstraint(MIDNIGHT_OR_AFTER_START, name="start_before_end"),
        Index("ix_weekly_patterns_provider_day", "provider_id", "day_of_week"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    day_of_week: Mapped[int]
    start_time: Mapped[time]
    end_time: Mapped[time]
    is_active: Mapped[bool] = mapped_column(default=True)
    valid_from_date: Mapped[date | None] = mapped_column(default=None)
    valid_until_date: Mapped[date | None] = mapped_column(default=None)


class DateOverride(TimestampMixin, Base):
    """One date's exception: replace the weekly hours, add hours, or be unavailable."""

    __tablename__ = "date_overrides"
    __table_args__ = (Index("ix_date_overrides_provider_date", "provider_id", "on_date"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    on_date: Mapped[date]
    kind: Mapped[OverrideKind] = mapped_column(
        Enum(
            OverrideKind,
            name="override_kind",
            native_enum=False,
            length=20,
            values_callable=lambda kinds: [k.value for k in kinds],
        )
    )
    # [["09:00:00", "12:00:00"], ...]; empty for "unavailable".
    ranges: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(String(200))


class TimeOff(TimestampMixin, Base):
    """Whole local days off, inclusive (holidays, leave)."""

    __tablename__ = "time_off"
    __table_args__ = (
        CheckConstraint("start_date <= end_date", name="start_not_after_end"),
        Index("ix_time_off_provider_dates", "provider_id", "start_date", "end_date"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    start_date: Mapped[date]
    end_date: Mapped[date]
    reason: Mapped[str | None] = mapped_column(String(200))


class CalendarBusy(Base):
    """Busy time read from a provider's connected calendar (``slotwise.external``): UTC
    intervals, merged per calendar, kept for the booking horizon, replaced by each sync that
    finds them changed. Part of the provider's terms, as time off is (but instants): its
    triggers raise the rules version and tell the slot caches (migration 0023), and both
    listings and the booking decision read it (``availability.sources``)."""

    __tablename__ = "calendar_busy"
    __table_args__ = (
        CheckConstraint("start_at < end_at", name="start_before_end"),
        Index("ix_calendar_busy_provider_start", "provider_id", "start_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    calendar_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("external_calendars.id", ondelete="CASCADE"), index=True
    )
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]


class ScheduleChange(Base):
    """SQLite's log of changes to what slots are computed from, written by triggers
    (migration 0008): whose (a provider's or a provider user's id), in commit order, and for
    an appointment the row as the change left it (``detail``, JSON; migration 0015). Workers
    read what is new when the file's data version moves, so a commit that changes no
    schedule (a login, a mail marked sent) empties no cache. PostgreSQL announces the same
    changes with NOTIFY and leaves this table empty."""

    __tablename__ = "schedule_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ref: Mapped[uuid.UUID]
    detail: Mapped[str | None] = mapped_column(Text)
