"""A connected calendar: where it is (encrypted), how it is read, and how its syncs went."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from slotwise.db import Base, utcnow


class Kind(StrEnum):
    ICS_URL = "ics_url"  # a secret iCalendar address (Google, Outlook, Apple, Nextcloud)
    CALDAV = "caldav"  # a CalDAV calendar, with its account's credentials


class Standing(StrEnum):
    """Whether the worker syncs it (the lease's status: ``leases.claim`` takes ``active``)."""

    ACTIVE = "active"
    PAUSED = "paused"  # failing for too long, or paused by the provider: no background sync


class SyncStatus(StrEnum):
    PENDING = "pending"  # never synced yet
    OK = "ok"
    ERROR = "error"  # the last sync failed; the busy time of the last good one is kept


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        length=20,
        values_callable=lambda members: [m.value for m in members],
    )


class ExternalCalendar(Base):
    """One calendar of a provider's. ``secret`` holds what reaches it, encrypted
    (``external.keys``): the iCalendar URL (a capability: whoever has it reads the calendar),
    or the CalDAV server, account, password and calendar. Only its ``host`` is ever shown.

    ``status``, ``due_at``, ``locked_until`` and ``claimed_by`` are the worker's lease
    (``slotwise.leases``): a sync is due at ``due_at``, and one worker at a time syncs it."""

    __tablename__ = "external_calendars"
    __table_args__ = (Index("ix_external_calendars_status_due_at", "status", "due_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[Kind] = mapped_column(_enum(Kind, "external_calendar_kind"))
    name: Mapped[str | None] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    secret: Mapped[str] = mapped_column(Text)
    tentative_busy: Mapped[bool] = mapped_column(default=True)
    write_bookings: Mapped[bool] = mapped_column(default=False)
    status: Mapped[Standing] = mapped_column(_enum(Standing, "external_calendar_status"))
    due_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sync_status: Mapped[SyncStatus] = mapped_column(_enum(SyncStatus, "external_sync_status"))
    last_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    event_count: Mapped[int] = mapped_column(default=0)
    # What the last good sync read: the validators of its answer (conditional requests),
    # the digest of its body and the window it was expanded for (the same body for the same
    # window changes nothing; a window moved on needs the body again).
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    synced_window: Mapped[str | None] = mapped_column(String(60))
    # Bookings out (``write_bookings``): when they were last written, and why not.
    pushed_at: Mapped[datetime | None]
    push_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PushedEvent(Base):
    """A booking's event as Slotwise last wrote it into a provider's CalDAV calendar (by its
    UID, the resource ``<uid>.ics``): what it wrote (a digest), so that a booking unchanged
    is not written again, and one changed or gone is updated or removed."""

    __tablename__ = "caldav_pushed"

    calendar_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("external_calendars.id", ondelete="CASCADE"), primary_key=True
    )
    uid: Mapped[str] = mapped_column(String(200), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    end_at: Mapped[datetime]  # the event's (its series' last) end: past events are left be
    pushed_at: Mapped[datetime]
