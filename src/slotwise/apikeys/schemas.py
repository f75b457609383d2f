"""API keys as the API takes and shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from slotwise.apikeys.scopes import Scope
from slotwise.dates import ApiAwareDatetime
from slotwise.text import Text

Name = Annotated[
    Text,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Field(examples=["Booking page"]),
]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=len(Scope),
        description="What the key may do: `read` (GET routes), `book` (book, cancel, "
        "reschedule; guests' bookings too), `manage` (the owner's hours, services, profile, "
        "webhooks, confirming and declining...).",
        examples=[["read", "book"]],
    )
    expires_at: ApiAwareDatetime | None = Field(
        default=None, description="When the key stops working (with offset); none: never."
    )

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, scopes: list[Scope]) -> list[Scope]:
        return sorted(set(scopes))


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID = Field(description="The owner: the key acts as this account.")
    name: str
    prefix: str = Field(
        description="The key's first characters, to recognise it.", examples=["sw_live_x3Fq"]
    )
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Recorded at most once a minute.")
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(
        description="The key: send it as `Authorization: Bearer sw_live_…`. Shown only now; "
        "Slotwise keeps only its SHA-256.",
        examples=["sw_live_x3FqW0cH0Yb7jR2Gk5mQdT8zV1nLpA6sUe9iXo4yZ_B"],
    )
