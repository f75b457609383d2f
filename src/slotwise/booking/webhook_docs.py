"""The webhook events in the OpenAPI document (its ``webhooks`` section): what each one's
body is, with an example. Receivers read them there; the payloads are built by
``booking.announce`` and ``availability.service`` through ``webhooks.queue``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from slotwise.booking.schemas import AppointmentRead
from slotwise.webhooks.events import EventType

_HEADERS = (
    "Signed per Standard Webhooks: `webhook-id` (the event's id, the same on every retry), "
    "`webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of "
    "`id.timestamp.body` by the subscription's secret; two, space-separated, while a rotated "
    "secret still signs). Answer 2xx within the timeout; anything else is retried with "
    "backoff for about a day."
)

_APPOINTMENT_EXAMPLE: JsonDict = {
    "id": "7b0c4f5e-2d8e-4b4a-9a51-2f0c1b7d9e10",
    "provider_id": "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b",
    "service_id": None,
    "client_id": None,
    "guest": {"name": "Grace Guest", "email": "grace@example.com", "phone": None},
    "start_at": "2027-03-05T10:00:00-05:00",
    "end_at": "2027-03-05T11:00:00-05:00",
    "timezone": "America/New_York",
    "status": "confirmed",
    "hold_until": None,
    "notes": None,
    "cancel_reason": None,
    "created_at": "2027-03-01T12:00:00Z",
    "updated_at": "2027-03-01T12:00:00Z",
    "history": [],
}


class BookingEventData(BaseModel):
    appointment: AppointmentRead = Field(description="As `GET /appointments/{id}` shows it.")


class BookingEvent(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 1,
                    "id": "0d6b1a8e-5f4c-4a3b-9e2d-1c0b9a8f7e6d",
                    "type": "booking.created",
                    "timestamp": "2027-03-01T12:00:00+00:00",
                    "sequence": 0,
                    "data": {"appointment": _APPOINTMENT_EXAMPLE},
                }
            ]
        }
    )

    version: Literal[1] = Field(description="The payload's shape; a new one gets a new number.")
    id: uuid.UUID = Field(description="The event's id, as the `webhook-id` header.")
    type: str
    timestamp: datetime = Field(description="When the change happened.")
    sequence: int = Field(
        description="The appointment's sequence as of the event: order its events by it."
    )
    data: BookingEventData


class AvailabilityChangedData(BaseModel):
    provider_id: uuid.UUID
    changed: Literal["hours", "overrides", "time_off"]


class AvailabilityEvent(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 1,
                    "id": "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
                    "type": "availability.changed",
                    "timestamp": "2027-03-01T12:00:00+00:00",
                    "data": {
                        "provider_id": "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b",
                        "changed": "time_off",
                    },
                }
            ]
        }
    )

    version: Literal[1]
    id: uuid.UUID
    type: Literal["availability.changed"]
    timestamp: datetime
    data: AvailabilityChangedData


async def _booking_event(body: BookingEvent) -> None:
    """Documentation only: Slotwise posts this to subscribers."""


async def _availability_event(body: AvailabilityEvent) -> None:
    """Documentation only: Slotwise posts this to subscribers."""


_WHAT = {
    EventType.BOOKING_CREATED: "A booking was made (any status, a held guest booking too).",
    EventType.BOOKING_CONFIRMED: "The provider confirmed a booking (or a guest verified it).",
    EventType.BOOKING_DECLINED: "The provider declined a booking.",
    EventType.BOOKING_CANCELLED: "A booking was cancelled, by either side.",
    EventType.BOOKING_RESCHEDULED: "A booking moved to a new time.",
    EventType.BOOKING_COMPLETED: "The provider marked a booking completed.",
    EventType.BOOKING_NO_SHOW: "The provider marked the client a no-show.",
    EventType.AVAILABILITY_CHANGED: (
        "A provider's weekly hours, date overrides or time off changed: read the slots again."
    ),
}


def describe_webhooks(app: FastAPI) -> None:
    for kind, what in _WHAT.items():
        availability = kind is EventType.AVAILABILITY_CHANGED
        app.webhooks.add_api_route(
            kind.value,
            _availability_event if availability else _booking_event,
            methods=["POST"],
            name=kind.value,
            summary=what,
            description=f"{what}\n\n{_HEADERS}",
            tags=["webhooks"],
        )
