"""Appointments as the API shows them: times with the provider's offset, with history."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from slotwise.booking.models import Appointment
from slotwise.booking.schemas import AppointmentRead, BookingCreated, EventRead, GuestRead


def appointment_read(appointment: Appointment) -> AppointmentRead:
    zone = ZoneInfo(appointment.timezone)
    guest = None
    if appointment.guest_email is not None:
        guest = GuestRead(
            name=appointment.guest_name or "",
            email=appointment.guest_email,
            phone=appointment.guest_phone,
        )
    return AppointmentRead(
        id=appointment.id,
        provider_id=appointment.provider_id,
        service_id=appointment.service_id,
        client_id=appointment.client_id,
        guest=guest,
        start_at=appointment.start_at.astimezone(zone),
        end_at=appointment.end_at.astimezone(zone),
        timezone=appointment.timezone,
        status=appointment.status,
        notes=appointment.notes,
        cancel_reason=appointment.cancel_reason,
        created_at=appointment.created_at,
        updated_at=appointment.updated_at,
        history=[
            EventRead.model_validate(event).model_copy(
                update={
                    "at": event.at,
                    "from_start_at": event.from_start_at.astimezone(zone)
                    if event.from_start_at
                    else None,
                    "to_start_at": event.to_start_at.astimezone(zone)
                    if event.to_start_at
                    else None,
                }
            )
            for event in appointment.events
        ],
    )


def booking_created(appointment: Appointment, manage_token: str | None) -> BookingCreated:
    return BookingCreated(**appointment_read(appointment).model_dump(), manage_token=manage_token)
