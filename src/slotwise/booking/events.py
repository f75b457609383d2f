"""The history of an appointment, written with every change."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from slotwise.booking.models import Appointment, AppointmentEvent
from slotwise.users.models import User


class ActorRole(StrEnum):
    CLIENT = "client"
    GUEST = "guest"
    PROVIDER = "provider"
    ADMIN = "admin"


def record(
    appointment: Appointment,
    *,
    actor: User | None,
    role: ActorRole,
    action: str,
    now: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    from_start_at: datetime | None = None,
    to_start_at: datetime | None = None,
    reason: str | None = None,
) -> AppointmentEvent:
    event = AppointmentEvent(
        **entry(
            appointment,
            actor=actor,
            role=role,
            action=action,
            now=now,
            from_status=from_status,
            to_status=to_status,
            from_start_at=from_start_at,
            to_start_at=to_start_at,
            reason=reason,
        )
    )
    appointment.events.append(event)
    return event


def entry(
    appointment: Appointment,
    *,
    actor: User | None,
    role: ActorRole,
    action: str,
    now: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    from_start_at: datetime | None = None,
    to_start_at: datetime | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """A history row's values (``record`` makes and attaches the row)."""
    return {
        "id": uuid.uuid4(),
        "appointment_id": appointment.id,
        "at": now,
        "actor_id": actor.id if actor else None,
        "actor_role": role.value,
        "action": action,
        "from_status": from_status,
        "to_status": to_status,
        "from_start_at": from_start_at,
        "to_start_at": to_start_at,
        "reason": reason,
    }
