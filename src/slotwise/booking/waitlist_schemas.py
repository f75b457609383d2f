"""The waitlist's request and answers (``booking.waitlist_router``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from slotwise.booking.schemas import EndAt, GuestDetails, Notes, ProviderRef, StartAt


class WaitlistCreate(BaseModel):
    """A place in line for a full slot or session: the same fields as a booking's time (and
    the same aliases), how the place is to be given, and a guest's details."""

    model_config = ConfigDict(extra="forbid")

    provider_id: ProviderRef
    start_datetime: StartAt
    end_datetime: EndAt = None
    service_id: uuid.UUID | None = None
    mode: Literal["offer", "book"] = Field(
        default="offer",
        description="`book`: a freed place is booked for you at once. `offer`: it is held "
        "for you and offered by email (`SLOTWISE_WAITLIST_OFFER_MINUTES`), then passes on.",
    )
    notes: Notes | None = Field(default=None, description="For the booking, in `book` mode.")
    guest_details: GuestDetails | None = Field(
        default=None, description="Required when joining without a token."
    )


class WaitlistEntryRead(BaseModel):
    id: uuid.UUID
    provider_id: uuid.UUID
    service_id: uuid.UUID | None
    start_at: datetime = Field(description="With the provider's UTC offset.")
    end_at: datetime
    timezone: str
    mode: Literal["offer", "book"]
    status: Literal["waiting", "offered", "booked", "expired", "skipped", "left"]
    position: int | None = Field(
        description="Your place in this time's line (1: next); null once out of line."
    )
    offer_expires_at: datetime | None = Field(
        description="An offer's end (status `offered`): book with the emailed hold token before it."
    )
    appointment_id: uuid.UUID | None = Field(description="The booking, once `booked`.")
    created_at: datetime


class WaitlistJoined(WaitlistEntryRead):
    manage_token: str | None = Field(
        description="A guest's: shown once; read or leave at /waitlist/by-token/{token}."
    )


class WaitlistWaiter(WaitlistEntryRead):
    """An entry as its provider sees it: with who waits."""

    name: str
    email: str
