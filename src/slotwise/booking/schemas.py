from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from slotwise.booking.models import Status
from slotwise.dates import ApiDate, ApiDatetime
from slotwise.text import MultilineText, Text

Notes = Annotated[MultilineText, StringConstraints(max_length=2000)]
HoldToken = Annotated[Text, StringConstraints(min_length=16, max_length=128)]
Reason = Annotated[MultilineText, StringConstraints(strip_whitespace=True, max_length=500)]

# A request's provider and time, with the aliases the systems Slotwise replaces used: one
# declaration for every request that names a slot (booking, series, hold, waitlist).
ProviderRef = Annotated[
    Text,
    Field(
        min_length=1,
        max_length=64,
        validation_alias=AliasChoices("provider_id", "tutor_id", "doctor_id", "staff_id"),
        description="The provider's id, user id or public handle.",
    ),
]
StartAt = Annotated[
    ApiDatetime, Field(validation_alias=AliasChoices("start_datetime", "start_time", "start_at"))
]
EndAt = Annotated[
    ApiDatetime | None, Field(validation_alias=AliasChoices("end_datetime", "end_time", "end_at"))
]


class GuestDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    email: EmailStr
    phone: Annotated[Text, StringConstraints(strip_whitespace=True, max_length=40)] | None = None


class AppointmentCreate(BaseModel):
    """A booking. Aliases are accepted: tutor_id, doctor_id, staff_id for provider_id;
    start_time/end_time for start_datetime/end_datetime.

    A datetime without an offset is read in the provider's time zone; one with an offset is
    taken as given. The end may be left out: it is then the service's duration.
    """

    model_config = ConfigDict(extra="forbid")

    provider_id: ProviderRef
    start_datetime: StartAt
    end_datetime: EndAt = None
    service_id: uuid.UUID | None = None
    notes: Notes | None = None
    guest_details: GuestDetails | None = Field(
        default=None, description="Required when booking without a token."
    )
    hold_token: HoldToken | None = Field(
        default=None,
        description="A hold's token (POST /holds): books the held slot, which nothing else "
        "may book; the provider, service and start must be the hold's.",
    )


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["confirmed", "declined", "cancelled"]
    reason: Reason | None = None


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None


class RescheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_start_time: ApiDatetime = Field(
        validation_alias=AliasChoices("new_start_time", "start_datetime", "start_time")
    )
    new_end_time: ApiDatetime | None = Field(
        default=None, validation_alias=AliasChoices("new_end_time", "end_datetime", "end_time")
    )
    reason: Reason | None = None


class NotesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notes: Notes | None


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_id: uuid.UUID | None
    actor_role: str
    action: str
    from_status: str | None
    to_status: str | None
    from_start_at: datetime | None
    to_start_at: datetime | None
    reason: str | None


class GuestRead(BaseModel):
    name: str
    email: str
    phone: str | None


class SeatRead(BaseModel):
    """The group session a seat belongs to: never its other attendees, nor how many there are."""

    session_key: uuid.UUID = Field(
        description="The session: every seat of it has this key (its provider's sessions routes)."
    )
    capacity: int = Field(description="The session's seats (the service's, when this was taken).")


class AppointmentRead(BaseModel):
    id: uuid.UUID
    provider_id: uuid.UUID
    service_id: uuid.UUID | None
    client_id: uuid.UUID | None
    guest: GuestRead | None
    start_at: datetime = Field(description="With the provider's UTC offset.")
    end_at: datetime
    timezone: str = Field(description="The provider's IANA zone.")
    status: Status
    hold_until: datetime | None = Field(
        default=None,
        description=(
            "pending_verification only: the time is held until then, for the guest to follow "
            "the link mailed to them; after it, it is released."
        ),
    )
    notes: str | None
    cancel_reason: str | None
    series_id: uuid.UUID | None = Field(
        default=None, description="The recurring series it is an occurrence of, if any."
    )
    seat: SeatRead | None = Field(
        default=None,
        description="A seat of a group session (a service of capacity above 1): its session; "
        "null for a one-to-one appointment.",
    )
    team_booking_id: uuid.UUID | None = Field(
        default=None,
        description="A collective team booking's id, shared by its members' appointments "
        "(cancelled and rescheduled together); null otherwise.",
    )
    created_at: datetime
    updated_at: datetime
    history: list[EventRead]


class BookingCreated(AppointmentRead):
    manage_token: str | None = Field(
        default=None,
        description=(
            "Guests only, shown once: manage the booking at /bookings/{token}. Null in an "
            "idempotent replay when the application mails guests their link instead."
        ),
    )


class Standing(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    email: str = Field(
        description="The client: an account's email, or `guest:` and the email for a guest."
    )
    no_show_count: int
    blocked: bool


class StandingUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    blocked: bool
    reset_no_shows: bool = False


class AttendeeRead(BaseModel):
    appointment_id: uuid.UUID
    name: str
    email: str
    status: Status


class SessionRead(BaseModel):
    """A group session as its provider sees it: every seat, with its attendee."""

    session_key: uuid.UUID
    service_id: uuid.UUID | None
    title: str
    start_at: datetime = Field(description="With the provider's UTC offset.")
    end_at: datetime
    timezone: str = Field(description="The provider's IANA zone.")
    capacity: int
    seats_taken: int = Field(description="Seats that take time (pending, confirmed or held).")
    attendees: list[AttendeeRead] = Field(description="Every seat, cancelled ones too.")


# -- recurring series ---------------------------------------------------------------------


class SeriesCreate(BaseModel):
    """A recurring series: every ``every_weeks`` weeks at the start's wall-clock time in the
    provider's zone, ``count`` times or ``until`` a local date (inclusive), at most 52.

    The start is read as for a single booking (no offset: a wall time in the provider's
    zone). Every occurrence is decided and judged as a single booking would be. By default
    (``on_conflict: "fail"``) all are booked or none; with ``"skip"`` the free ones are
    booked and the answer lists the others.
    """

    model_config = ConfigDict(extra="forbid")

    provider_id: ProviderRef
    service_id: uuid.UUID | None = None
    start_datetime: StartAt = Field(description="The first occurrence.")
    every_weeks: int = Field(default=1, ge=1, le=4)
    count: int | None = Field(
        default=None, ge=1, description="How many occurrences (more than 52: series_too_long)."
    )
    until: ApiDate | None = Field(
        default=None, description="The last date an occurrence may fall on (inclusive)."
    )
    on_conflict: Literal["fail", "skip"] = "fail"
    notes: Notes | None = None
    guest_details: GuestDetails | None = Field(
        default=None, description="Required when booking without a token."
    )

    @model_validator(mode="after")
    def _count_or_until(self) -> Self:
        if (self.count is None) == (self.until is None):
            raise ValueError("give count or until, not both")
        return self


class SkippedOccurrence(BaseModel):
    index: int = Field(description="The occurrence's place in the series, from 0.")
    start_at: datetime = Field(description="Where the rule puts it, with the provider's offset.")
    code: str = Field(description="Why it was not booked: a booking refusal's code.")
    details: dict[str, Any] | None = None


class SeriesRead(BaseModel):
    """A series and its occurrences (cancelled and moved ones too), by the rule's order."""

    id: uuid.UUID
    provider_id: uuid.UUID
    service_id: uuid.UUID | None
    client_id: uuid.UUID | None
    guest: GuestRead | None
    timezone: str = Field(description="The provider's IANA zone: the wall time is read in it.")
    first_date: date
    wall_time: time
    every_weeks: int
    count: int = Field(description="The occurrences the rule has (skipped ones included).")
    until: date | None
    created_at: datetime
    occurrences: list[AppointmentRead]


class SeriesCreated(SeriesRead):
    skipped: list[SkippedOccurrence] = Field(
        description='With on_conflict "skip": the occurrences not booked, and why.'
    )
    manage_token: str | None = Field(
        default=None,
        description="Guests only, shown once: manage the series at /bookings/series/{token}.",
    )


class SeriesCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_appointment_id: uuid.UUID | None = Field(
        default=None,
        description=(
            "Cancel this occurrence and every one after it in the series (moved ones "
            "included). Null: every upcoming occurrence still inside the cancellation window."
        ),
    )
    reason: Reason | None = None


class SeriesStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["confirmed", "declined"]
    reason: Reason | None = None


# -- holds ---------------------------------------------------------------------------------------


class HoldCreate(BaseModel):
    """A slot to hold while the client fills in a form: the same fields as a booking's
    time (and the same aliases)."""

    model_config = ConfigDict(extra="forbid")

    provider_id: ProviderRef
    start_datetime: StartAt
    end_datetime: EndAt = None
    service_id: uuid.UUID | None = None


class HoldRead(BaseModel):
    provider_id: uuid.UUID
    service_id: uuid.UUID | None
    start_at: datetime = Field(description="With the provider's UTC offset.")
    end_at: datetime
    timezone: str = Field(description="The provider's IANA zone.")
    expires_at: datetime = Field(
        description="With the provider's UTC offset: the time is free again after it."
    )


class HoldCreated(HoldRead):
    hold_token: str = Field(
        description="Shown once: book with it (POST /appointments, `hold_token`), read or "
        "release the hold at /holds/{hold_token}."
    )
