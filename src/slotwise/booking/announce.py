"""What booking tells webhook subscribers of a change: an event with the appointment as
the API shows it (``AppointmentRead``) and its ``sequence``, queued in the change's
transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slotwise.booking.models import Appointment, Status
from slotwise.booking.present import appointment_read
from slotwise.webhooks import queue
from slotwise.webhooks.events import EventType

_BY_STATUS = {
    Status.CONFIRMED: EventType.BOOKING_CONFIRMED,
    Status.DECLINED: EventType.BOOKING_DECLINED,
    Status.CANCELLED: EventType.BOOKING_CANCELLED,
    Status.COMPLETED: EventType.BOOKING_COMPLETED,
    Status.NO_SHOW: EventType.BOOKING_NO_SHOW,
}


def event(kind: EventType, appointment: Appointment, *, now: datetime) -> queue.Event:
    """The event, its data (the appointment as the API shows it) made only if someone
    subscribes, when it is queued with the change's write."""

    def data() -> dict[str, Any]:
        return {"appointment": appointment_read(appointment).model_dump(mode="json")}

    return queue.event(
        kind, provider_id=appointment.provider_id, data=data, now=now, sequence=appointment.sequence
    )


def of_change(appointment: Appointment, values: dict[str, Any]) -> queue.Event | None:
    """The event of a change to the row (``values``, its new values): a new time is a
    reschedule; a new status, the status's event (a held guest booking becoming pending
    tells nothing new: its creation was told); notes alone, none."""
    now = values["updated_at"]
    if "start_at" in values:
        return event(EventType.BOOKING_RESCHEDULED, appointment, now=now)
    kind = _BY_STATUS.get(values["status"]) if "status" in values else None
    return None if kind is None else event(kind, appointment, now=now)
