from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from slotwise.availability.search_schemas import SearchOrder
from slotwise.booking.schemas import BookingCreated, GuestDetails, Notes
from slotwise.dates import ApiDate, ApiDatetime
from slotwise.providers.schemas import Buffer, Duration, Handle
from slotwise.teams.models import InvitationStatus, TeamMode
from slotwise.text import MultilineText, Text
from slotwise.timezones import TimeZoneName

Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Description = Annotated[MultilineText, StringConstraints(max_length=5000)]
Priority = Annotated[int, Field(ge=-100, le=100, description="Higher goes first among equals.")]
Weight = Annotated[
    int, Field(ge=1, le=100, description="Shares of round-robin bookings (2: twice as many).")
]


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_handle: Handle
    name: Name
    description: Description | None = None
    owner_id: uuid.UUID | None = Field(
        default=None, description="Admins only: the owning account (default: yourself)."
    )


class TeamUpdate(BaseModel):
    """Fields to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    public_handle: Handle | None = None
    name: Name | None = None
    description: Description | None = None


class MemberAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Annotated[Text, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The provider's public handle, id or user id."
    )
    priority: Priority = 0
    weight: Weight = 1


class MemberRead(BaseModel):
    provider_id: uuid.UUID
    public_handle: str
    full_name: str
    timezone: str
    priority: int
    weight: int


class TeamServiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None
    mode: TeamMode = Field(
        description="round_robin: open while any member is free, booked with one of them; "
        "collective: open while every member is free, booked with all of them."
    )
    duration_minutes: Duration
    buffer_before_minutes: Buffer = 0
    buffer_after_minutes: Buffer = 0
    slot_interval_minutes: Duration | None = Field(
        default=None, description="Step between slot starts; defaults to the duration."
    )


class TeamServiceUpdate(BaseModel):
    """Fields to change (the mode stays); those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    duration_minutes: Duration | None = None
    buffer_before_minutes: Buffer | None = None
    buffer_after_minutes: Buffer | None = None
    slot_interval_minutes: Duration | None = None
    is_active: bool | None = None


class TeamServiceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    mode: TeamMode
    duration_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    slot_interval_minutes: int | None
    is_active: bool


class TeamRead(BaseModel):
    id: uuid.UUID
    public_handle: str
    name: str
    description: str | None
    owner_id: uuid.UUID
    members: list[MemberRead] = Field(description="By priority (highest first), then handle.")
    services: list[TeamServiceRead]
    created_at: datetime
    updated_at: datetime


class TeamSlotQuery(BaseModel):
    """A team's slots: a team service, a window of dates in a zone."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    service_id: uuid.UUID = Field(alias="service", description="A team service's id.")
    first: ApiDate = Field(alias="from", description="First date, in `tz`.")
    last: ApiDate | None = Field(
        default=None, alias="to", description="Last date, inclusive (default: `from`)."
    )
    tz: TimeZoneName = Field(default="UTC", description="The zone of the dates and times.")
    order: SearchOrder = Field(
        default=SearchOrder.TIME,
        description="`time` (earliest first) or `best`: the same slots, best first for the "
        "signed-in client (or anyone), each with `score` and `reasons` (the ranking rules of "
        "suggestions; a slot is scored as its member's: round robin's, the member a booking "
        "would go to, whose bookings in the month the balance rule counts).",
    )


class TeamSlotRead(BaseModel):
    start_at: datetime = Field(description="In the `tz` zone.")
    end_at: datetime
    date: date
    members: list[str] = Field(
        description="Round robin: the members free then (handles, in the order a booking "
        "would try them now); collective: every member."
    )
    score: float | None = Field(
        default=None, description="`order=best` only: the slot's score (higher is better)."
    )
    reasons: list[str] | None = Field(
        default=None, description="`order=best` only: why it ranks where it does, in words."
    )


class TeamSlotsRead(BaseModel):
    team: str
    service_id: uuid.UUID
    mode: TeamMode
    timezone: str
    duration_minutes: int
    from_date: date
    to_date: date
    order: SearchOrder
    ranked_by: str | None = Field(
        default=None,
        description="`order=best`: `rules`, or `model:<version>` when a trained model ranks.",
    )
    slots: list[TeamSlotRead]


class TeamBookingCreate(BaseModel):
    """A booking of a team service. The start is an instant: with its offset (a team has no
    zone of its own)."""

    model_config = ConfigDict(extra="forbid")

    service_id: uuid.UUID = Field(description="A team service's id.")
    start_datetime: ApiDatetime = Field(
        validation_alias=AliasChoices("start_datetime", "start_time", "start_at"),
        description="With a UTC offset (else 422 `offset_required`).",
    )
    notes: Notes | None = None
    guest_details: GuestDetails | None = Field(
        default=None, description="Required when booking without a token."
    )


class AssignedRead(BaseModel):
    provider_id: uuid.UUID
    public_handle: str
    full_name: str


class TeamBookingRead(BaseModel):
    team_id: uuid.UUID
    service_id: uuid.UUID
    mode: TeamMode
    team_booking_id: uuid.UUID | None = Field(
        description="Collective: the id the members' appointments share (null: round robin)."
    )
    assigned: list[AssignedRead] = Field(description="The member (round robin) or members.")
    appointments: list[BookingCreated] = Field(
        description="One per member assigned; the first is the client's (a guest's manage "
        "token is on it: cancelling it cancels every member's)."
    )


class InvitationCreate(MemberAdd):
    """An invitation names what adding the member would: the provider, and their priority
    and weight once they accept."""


class InvitationTeam(BaseModel):
    id: uuid.UUID
    public_handle: str
    name: str


class InvitationProvider(BaseModel):
    id: uuid.UUID
    public_handle: str
    full_name: str


class InvitationRead(BaseModel):
    id: uuid.UUID
    team: InvitationTeam
    provider: InvitationProvider
    status: InvitationStatus
    priority: int
    weight: int
    created_at: datetime
    responded_at: datetime | None = Field(
        description="When it was accepted, declined or withdrawn (null while pending)."
    )
