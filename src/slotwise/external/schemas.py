"""Connected calendars as the API takes and shows them: what reaches a calendar goes in,
never out (only its host is shown)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from slotwise.external.models import Kind, SyncStatus
from slotwise.text import Text

Url = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TentativeBusy = Annotated[
    bool, Field(description="Events marked tentative count as busy (free if false).")
]


class IcsCalendarCreate(BaseModel):
    """A secret iCalendar address (``https://``, or ``webcal://``, read as https)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[Kind.ICS_URL]
    url: Url = Field(examples=["https://calendar.example.com/ical/secret-address/basic.ics"])
    name: Name | None = None
    tentative_busy: TentativeBusy = True


class CaldavCalendarCreate(BaseModel):
    """A CalDAV calendar: the server, the account (an app password where the server has
    them), and which calendar: its URL, or its display name (the account's first calendar
    if neither)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[Kind.CALDAV]
    server_url: Url = Field(examples=["https://dav.example.com/"])
    username: Annotated[Text, StringConstraints(min_length=1, max_length=320)]
    password: Annotated[Text, StringConstraints(min_length=1, max_length=500)]
    calendar_url: Url | None = None
    calendar_name: Name | None = None
    name: Name | None = None
    tentative_busy: TentativeBusy = True
    write_bookings: bool = Field(
        default=False,
        description="Write your confirmed bookings into this calendar (at most one calendar).",
    )


CalendarCreate = Annotated[IcsCalendarCreate | CaldavCalendarCreate, Field(discriminator="kind")]


class CalendarRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: Kind
    name: str | None
    host: str = Field(description="The calendar's host: the one part of its address shown.")
    tentative_busy: bool
    write_bookings: bool
    paused: bool = Field(description="Not synced in the background (failing for too long).")
    sync_status: SyncStatus
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    failing_since: datetime | None
    event_count: int = Field(
        description="Busy events (occurrences) the last good sync found within the horizon."
    )
    next_sync_at: datetime | None = Field(description="When the worker syncs it next.")
    last_push_at: datetime | None = Field(
        description="With write_bookings: when your bookings were last written into it."
    )
    last_push_error: str | None = Field(
        description="With write_bookings: why the last writing failed (retried at each sync)."
    )
    created_at: datetime
