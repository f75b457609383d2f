"""Subscriptions and deliveries as the API takes and shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from slotwise.text import MultilineText, Text
from slotwise.webhooks.events import EventType
from slotwise.webhooks.models import DeliveryStatus

Url = Annotated[
    Text,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    Field(examples=["https://hooks.example.com/slotwise"]),
]
Description = Annotated[MultilineText, StringConstraints(max_length=500)]
EventTypes = Annotated[
    list[EventType],
    Field(
        min_length=1,
        max_length=len(EventType),
        description="The events wanted.",
        examples=[["booking.created", "booking.cancelled"]],
    ),
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes
    description: Description | None = None
    is_active: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    is_active: bool | None = Field(
        default=None, description="true also re-enables a subscription disabled for failing."
    )


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider_id: uuid.UUID | None = Field(
        description="Whose events: a provider's; null for an admin's, every provider's."
    )
    url: str
    event_types: list[EventType]
    description: str | None
    is_active: bool
    disabled_at: datetime | None = Field(
        description="Set when Slotwise disabled it for failing for days."
    )
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookSecret(BaseModel):
    secret: str = Field(
        description="Signs deliveries (Standard Webhooks, `whsec_<base64>`); shown once.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    previous_secret_valid_until: datetime | None = Field(
        default=None, description="After a rotation: the old secret signs too until then."
    )


class WebhookCreated(WebhookRead, WebhookSecret):
    pass


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    response_excerpt: str | None = Field(description="The first bytes of the answer.")


class DeliveryRead(BaseModel):
    id: uuid.UUID = Field(description="The event's id: the `webhook-id` header.")
    event_type: str
    status: DeliveryStatus
    attempts: int
    due_at: datetime = Field(description="When it is (or was last) due to be attempted.")
    delivered_at: datetime | None
    last_error: str | None
    created_at: datetime
    payload: dict[str, object]
    attempt_log: list[AttemptRead]
