"""The history of an appointment, written with every change."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, NotRequired

from typing_extensions import TypedDict, Unpack

from slotwise.booking.models import Appointment
from slotwise.users.models import User


class ActorRole(StrEnum):
    CLIENT = "client"
    GUEST = "guest"
    PROVIDER = "provider"
    ADMIN = "admin"


class Change(TypedDict):
    """What a history row says: who did what, when, and what it moved."""

    actor: User | None
    role: ActorRole
    action: str
    now: datetime
    from_status: NotRequired[str | None]
    to_status: NotRequired[str | None]
    from_start_at: NotRequired[datetime | None]
    to_start_at: NotRequired[datetime | None]
    reason: NotRequired[str | None]


def entry(appointment: Appointment, **change: Unpack[Change]) -> dict[str, Any]:
    """A history row's values (written by Core INSERTs: a new booking's by
    ``booking.write``, a change's by ``booking.change``)."""
    actor = change["actor"]
    return {
        "id": uuid.uuid4(),
        "appointment_id": appointment.id,
        "at": change["now"],
        "actor_id": actor.id if actor else None,
        "actor_role": change["role"].value,
        "action": change["action"],
        "from_status": change.get("from_status"),
        "to_status": change.get("to_status"),
        "from_start_at": change.get("from_start_at"),
        "to_start_at": change.get("to_start_at"),
        "reason": change.get("reason"),
    }
