from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    computed_field,
    model_validator,
)

from slotwise.dates import ApiDate
from slotwise.scheduling import OverrideKind, end_since_midnight, since_midnight
from slotwise.text import MultilineText
from slotwise.timezones import TimeZoneName

# Fields named `date` shadow the type inside their class; annotate them with this alias.
Date = date

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DayOfWeek = Annotated[int, Field(ge=0, le=6, description="0 = Monday … 6 = Sunday.")]
Note = Annotated[MultilineText, StringConstraints(strip_whitespace=True, max_length=200)]


def _naive(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a wall time takes no offset: it is read in the provider's time zone")
    return value


def _midnight_as_24(value: object) -> object:
    return "00:00:00" if value in ("24:00", "24:00:00") else value


# JSON Schema's "time" is RFC 3339's full-time, which has an offset; a wall time has none.
# Taken as RFC 3339's partial-time; answered as "09:00:00".
_WALL_TIME_IN = WithJsonSchema({"type": "string", "format": "partial-time"}, mode="validation")
_WALL_TIME_OUT = WithJsonSchema(
    {"type": "string", "pattern": r"^\d{2}:\d{2}:\d{2}(\.\d+)?$", "examples": ["09:00:00"]},
    mode="serialization",
)
# A local wall-clock reading in the provider's zone: "09:00:00", never "09:00:00Z".
WallTime = Annotated[time, AfterValidator(_naive), _WALL_TIME_IN, _WALL_TIME_OUT]
# An end: 00:00 (or "24:00") is the midnight that ends the day.
EndWallTime = Annotated[
    time, BeforeValidator(_midnight_as_24), AfterValidator(_naive), _WALL_TIME_IN, _WALL_TIME_OUT
]


def check_range(start_time: WallTime | None, end_time: WallTime | None) -> None:
    if (
        start_time is not None
        and end_time is not None
        and end_since_midnight(end_time) <= since_midnight(start_time)
    ):
        raise ValueError("end_time must be after start_time (00:00 as an end is midnight)")


def check_dates(first: date | None, last: date | None, names: str) -> None:
    if first is not None and last is not None and last < first:
        raise ValueError(f"{names}: the last date is before the first")


class PatternCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day_of_week: DayOfWeek
    start_time: WallTime = Field(examples=["09:00:00"], description="Local wall time.")
    end_time: EndWallTime = Field(
        examples=["17:00:00"],
        description="Local wall time, after start; 00:00 (or 24:00) is the end of the day.",
    )
    is_active: bool = True
    valid_from_date: ApiDate | None = Field(default=None, description="First date it applies.")
    valid_until_date: ApiDate | None = Field(default=None, description="Last date it applies.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        check_range(self.start_time, self.end_time)
        check_dates(self.valid_from_date, self.valid_until_date, "valid_from/until_date")
        return self


class PatternUpdate(BaseModel):
    """Fields to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    day_of_week: DayOfWeek | None = None
    start_time: WallTime | None = None
    end_time: EndWallTime | None = None
    is_active: bool | None = None
    valid_from_date: ApiDate | None = None
    valid_until_date: ApiDate | None = None


class PatternRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider_id: uuid.UUID
    day_of_week: int
    start_time: WallTime
    end_time: WallTime
    is_active: bool
    valid_from_date: date | None
    valid_until_date: date | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def day_name(self) -> str:
        return DAY_NAMES[self.day_of_week]


class TimeRangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_time: WallTime
    end_time: EndWallTime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        check_range(self.start_time, self.end_time)
        return self


class OverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: ApiDate
    kind: OverrideKind = Field(
        description="replace: these hours instead of the weekly ones; add: these hours too; "
        "unavailable: no hours that date."
    )
    ranges: list[TimeRangeBody] = Field(default_factory=list, max_length=48)
    note: Note | None = None

    @model_validator(mode="after")
    def _ranges_fit_kind(self) -> Self:
        if self.kind is OverrideKind.UNAVAILABLE and self.ranges:
            raise ValueError("an 'unavailable' override takes no ranges")
        if self.kind is not OverrideKind.UNAVAILABLE and not self.ranges:
            raise ValueError(f"an override of kind '{self.kind.value}' needs at least one range")
        return self


class OverrideRead(BaseModel):
    id: uuid.UUID
    provider_id: uuid.UUID
    date: Date
    kind: OverrideKind
    ranges: list[TimeRangeBody]
    note: str | None


class TimeOffCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_date: ApiDate
    end_date: ApiDate
    reason: Note | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        check_dates(self.start_date, self.end_date, "start_date/end_date")
        return self


class TimeOffRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider_id: uuid.UUID
    start_date: date
    end_date: date
    reason: str | None


class SeedAvailabilityCreate(BaseModel):
    """The body of ``POST /availability/``: a weekly pattern, or hours on a specific date."""

    model_config = ConfigDict(extra="forbid")

    staff_id: uuid.UUID | None = Field(
        default=None, description="Provider id or provider's user id; default: yourself."
    )
    day_of_week: DayOfWeek | None = None
    specific_date: ApiDate | None = Field(
        default=None, description="With is_recurring false: extra hours on this date."
    )
    start_time: WallTime
    end_time: WallTime
    is_recurring: bool = True

    @model_validator(mode="after")
    def _complete(self) -> Self:
        check_range(self.start_time, self.end_time)
        if self.is_recurring and self.day_of_week is None:
            raise ValueError("a recurring pattern needs day_of_week")
        if not self.is_recurring and self.specific_date is None:
            raise ValueError("a non-recurring entry needs specific_date")
        return self


class SlotQuery(BaseModel):
    """A slot listing's query: one date or a window (from/to), a service, the client's zone.

    Read as one model: FastAPI then validates the query string in one pass (the slot
    listing is the hottest route)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    on_date: ApiDate | None = Field(default=None, alias="date", description="One local date.")
    first: ApiDate | None = Field(default=None, alias="from", description="First local date.")
    last: ApiDate | None = Field(
        default=None, alias="to", description="Last local date (inclusive)."
    )
    service_id: uuid.UUID | None = Field(default=None, alias="service", description="A service id.")
    tz: TimeZoneName | None = Field(default=None, description="Also give slots in this zone.")
    slot_duration: int | None = Field(
        default=None, ge=5, le=720, description="Minutes, instead of the default session."
    )


class SlotRead(BaseModel):
    start_at: datetime = Field(description="Start, with the provider's UTC offset.")
    end_at: datetime
    date: Date = Field(description="The provider's local date of the slot.")
    client_start_at: datetime | None = Field(
        default=None, description="Start in the zone asked for with tz=."
    )
    client_end_at: datetime | None = None
    seats_left: int | None = Field(
        default=None,
        description="A group service's free seats in this session (null for capacity 1).",
    )


class SlotsRead(BaseModel):
    provider_id: uuid.UUID
    public_handle: str
    timezone: str
    client_timezone: str | None
    service_id: uuid.UUID | None
    duration_minutes: int
    capacity: int = Field(default=1, description="Seats of one session of the service.")
    from_date: date
    to_date: date
    slots: list[SlotRead]
