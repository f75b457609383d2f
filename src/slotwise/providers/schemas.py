from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from slotwise.text import MultilineText, Text
from slotwise.timezones import TimeZoneName

HANDLE_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,38})[a-z0-9]$|^[a-z0-9]{3}$")
# Words that are paths of their own under /providers (and the /tutors, /doctors aliases).
RESERVED_HANDLES = frozenset({"me", "availability", "slots", "search", "services", "new"})


def _handle(value: str) -> str:
    if not 3 <= len(value) <= 40 or not HANDLE_PATTERN.match(value) or "--" in value:
        raise ValueError(
            "public_handle must be 3-40 lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    if value in RESERVED_HANDLES:
        raise ValueError(f"public_handle {value!r} is reserved")
    return value


Handle = Annotated[Text, AfterValidator(_handle), Field(examples=["ana-math"])]
Specialty = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Bio = Annotated[MultilineText, StringConstraints(max_length=5000)]
Duration = Annotated[int, Field(ge=5, le=720, description="Minutes.")]
Buffer = Annotated[int, Field(ge=0, le=240, description="Minutes.")]
Limit = Annotated[int, Field(ge=1, le=10_000)]


class BookingRules(BaseModel):
    """The booking rules of a profile; every field optional on update."""

    session_duration_minutes: Duration | None = None
    buffer_before_minutes: Buffer | None = None
    buffer_after_minutes: Buffer | None = None
    min_notice_minutes: Annotated[int, Field(ge=0, le=525_600)] | None = None
    max_advance_days: Annotated[int, Field(ge=1, le=1095)] | None = None
    slot_interval_minutes: Duration | None = Field(
        default=None, description="Step between slot starts; defaults to the duration."
    )
    requires_confirmation: bool | None = Field(
        default=None, description="True: bookings wait for the provider to confirm."
    )
    cancellation_window_minutes: Annotated[int, Field(ge=0, le=525_600)] | None = Field(
        default=None, description="Clients may not cancel or reschedule this close to the start."
    )
    accepting_bookings: bool | None = None
    max_bookings_per_day: Limit | None = Field(
        default=None,
        description="At most this many bookings a day (in the provider's zone); null: no limit.",
    )
    max_bookings_per_week: Limit | None = Field(
        default=None,
        description="At most this many bookings a week, Monday to Sunday in the provider's zone.",
    )
    max_active_bookings_per_client: Limit | None = Field(
        default=None,
        description="At most this many upcoming bookings of one client (or guest email).",
    )
    verify_guest_email: bool | None = Field(
        default=None,
        description=(
            "True: a guest's booking is held (status pending_verification) until the guest "
            "follows the link mailed to them, and released if they do not in time."
        ),
    )


class ProviderCreate(BookingRules):
    model_config = ConfigDict(extra="forbid")

    public_handle: Handle
    specialty: Specialty | None = None
    bio: Bio | None = None
    timezone: TimeZoneName | None = Field(
        default=None, description="IANA zone; defaults to SLOTWISE_DEFAULT_TIMEZONE."
    )


class ProviderUpdate(BookingRules):
    model_config = ConfigDict(extra="forbid")

    public_handle: Handle | None = None
    specialty: Specialty | None = None
    bio: Bio | None = None
    timezone: TimeZoneName | None = None


class ServiceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    duration_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    slot_interval_minutes: int | None
    is_active: bool
    capacity: int


class ProviderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    full_name: str
    public_handle: str
    specialty: str | None
    bio: str | None
    timezone: str
    session_duration_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    min_notice_minutes: int
    max_advance_days: int
    slot_interval_minutes: int | None
    requires_confirmation: bool
    cancellation_window_minutes: int
    accepting_bookings: bool
    max_bookings_per_day: int | None
    max_bookings_per_week: int | None
    max_active_bookings_per_client: int | None
    verify_guest_email: bool
    created_at: datetime
    updated_at: datetime


class ProviderPublicRead(ProviderRead):
    services: list[ServiceRead] = Field(description="Active services on offer.")


MAX_CAPACITY = 500
Capacity = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_CAPACITY,
        description=(
            "Seats of one session: 1 books one client a slot; more makes a group session "
            "(a class), booked seat by seat."
        ),
    ),
]

ServiceName = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
]


class ServiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ServiceName
    description: Bio | None = None
    duration_minutes: Duration
    buffer_before_minutes: Buffer = 0
    buffer_after_minutes: Buffer = 0
    slot_interval_minutes: Duration | None = None
    capacity: Capacity = 1


class ServiceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ServiceName | None = None
    description: Bio | None = None
    duration_minutes: Duration | None = None
    buffer_before_minutes: Buffer | None = None
    buffer_after_minutes: Buffer | None = None
    slot_interval_minutes: Duration | None = None
    is_active: bool | None = None
    capacity: Capacity | None = None
