"""A search across providers' slots: its query and its answer."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from slotwise.dates import ApiDate
from slotwise.text import Text
from slotwise.timezones import TimeZoneName

Date = date


class SearchOrder(StrEnum):
    TIME = "time"
    BEST = "best"


Filter = Annotated[Text, Field(min_length=1, max_length=120)]


class SlotSearchQuery(BaseModel):
    """`GET /slots/search`'s query string, validated in one pass."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    service: Filter | None = Field(
        default=None,
        description="A service's name (any case, the whole name) or a service's id: the "
        "providers offering it, with its length, buffers and step.",
    )
    specialty: Filter | None = Field(
        default=None, description="The provider's specialty, exact, any case."
    )
    q: Filter | None = Field(
        default=None, description="Text in the provider's name, handle, specialty or bio."
    )
    first: ApiDate = Field(alias="from", description="First date (in `tz`, else each provider's).")
    last: ApiDate | None = Field(
        default=None, alias="to", description="Last date, inclusive (default: `from` + 6 days)."
    )
    tz: TimeZoneName | None = Field(
        default=None,
        description="The client's zone: `from`/`to` are its dates, and each slot is also given "
        "in it. Without it, the dates are each provider's own.",
    )
    limit: int = Field(default=20, ge=1, le=100, description="Slots per page.")
    cursor: Annotated[Text, Field(max_length=400)] | None = Field(
        default=None, description="`next_cursor` of the previous page, with the same query."
    )
    order: SearchOrder = Field(
        default=SearchOrder.TIME,
        description="`time`: earliest first, a page at a time; `best`: the best `limit` "
        "slots by the ranking rules (or model), each with `score` and `reasons`, one page.",
    )


class SearchProvider(BaseModel):
    id: uuid.UUID
    public_handle: str
    full_name: str
    timezone: str


class SearchService(BaseModel):
    id: uuid.UUID
    name: str
    duration_minutes: int


class SearchSlotRead(BaseModel):
    provider: SearchProvider
    service: SearchService | None = Field(
        description="The service searched for; null: the provider's default session."
    )
    start_at: datetime = Field(description="Start, with the provider's UTC offset.")
    end_at: datetime
    date: Date = Field(description="The provider's local date of the slot.")
    client_start_at: datetime | None = Field(description="Start in the `tz` zone (null without).")
    client_end_at: datetime | None
    seats_left: int | None = Field(
        description="A group service's free seats (null for one-to-one)."
    )


class Scored(BaseModel):
    score: float = Field(description="Higher is better: the rules' weighted sum, or the model's.")
    reasons: list[str] = Field(description="The rules that made it, in words.")


class RankedSearchSlotRead(SearchSlotRead, Scored):
    """A search's slot with `order=best`."""


class SlotSearchRead(BaseModel):
    from_date: Date
    to_date: Date
    client_timezone: str | None
    providers: int = Field(description="Providers (and services) whose slots were searched.")
    items: list[SearchSlotRead | RankedSearchSlotRead] = Field(
        description="By start, then provider id and service id; with `order=best`, best "
        "first, each with `score` and `reasons`."
    )
    next_cursor: str | None = Field(description="The next page's `cursor`; null on the last page.")


class SuggestionRead(Scored):
    start_at: datetime = Field(description="Start, with the provider's UTC offset.")
    end_at: datetime
    date: Date = Field(description="The provider's local date of the slot.")
    client_start_at: datetime | None
    client_end_at: datetime | None
    seats_left: int | None


class SuggestionsRead(BaseModel):
    provider_id: uuid.UUID
    public_handle: str
    timezone: str
    client_timezone: str | None
    service_id: uuid.UUID | None
    from_date: Date
    to_date: Date
    ranked_by: str = Field(description='"rules", or "model:<version>" when a model is loaded.')
    suggestions: list[SuggestionRead] = Field(description="Best first (ties: the earlier).")
