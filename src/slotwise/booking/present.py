"""Appointments as the API shows them: times with the provider's offset, with history."""

from __future__ import annotations

from html import escape
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from slotwise.booking.models import Appointment, AppointmentSeries
from slotwise.booking.schemas import (
    AppointmentRead,
    AttendeeRead,
    BookingCreated,
    EventRead,
    GuestRead,
    SeatRead,
    SeriesCreated,
    SeriesRead,
    SessionRead,
    SkippedOccurrence,
)
from slotwise.booking.sessions import GroupSession

R = TypeVar("R", bound=AppointmentRead)


def appointment_read(appointment: Appointment) -> AppointmentRead:
    return _read(AppointmentRead, appointment)


def session_read(found: GroupSession) -> SessionRead:
    zone = ZoneInfo(found.timezone)
    return SessionRead(
        session_key=found.session_key,
        service_id=found.service_id,
        title=found.title,
        start_at=found.start_at.astimezone(zone),
        end_at=found.end_at.astimezone(zone),
        timezone=found.timezone,
        capacity=found.capacity,
        seats_taken=found.seats_taken,
        attendees=[
            AttendeeRead(
                appointment_id=a.appointment_id, name=a.name, email=a.email, status=a.status
            )
            for a in found.attendees
        ],
    )


def series_read(series: AppointmentSeries, occurrences: list[Appointment]) -> SeriesRead:
    return SeriesRead(**_series_values(series, occurrences))


def series_created(
    series: AppointmentSeries,
    occurrences: list[Appointment],
    skipped: list[tuple[int, Any, str, dict[str, Any] | None]],
    manage_token: str | None,
) -> SeriesCreated:
    return SeriesCreated(
        **_series_values(series, occurrences),
        skipped=[
            SkippedOccurrence(index=index, start_at=start_at, code=code, details=details)
            for index, start_at, code, details in skipped
        ],
        manage_token=manage_token,
    )


def _series_values(series: AppointmentSeries, occurrences: list[Appointment]) -> dict[str, Any]:
    guest = None
    if series.guest_email is not None:
        guest = GuestRead(
            name=series.guest_name or "", email=series.guest_email, phone=series.guest_phone
        )
    return {
        "id": series.id,
        "provider_id": series.provider_id,
        "service_id": series.service_id,
        "client_id": series.client_id,
        "guest": guest,
        "timezone": series.timezone,
        "first_date": series.first_date,
        "wall_time": series.wall_time,
        "every_weeks": series.every_weeks,
        "count": series.count,
        "until": series.until_date,
        "created_at": series.created_at,
        "occurrences": [appointment_read(a) for a in occurrences],
    }


def booking_created(appointment: Appointment, manage_token: str | None) -> BookingCreated:
    return _read(BookingCreated, appointment, manage_token=manage_token)


def _read(model: type[R], appointment: Appointment, **extra: Any) -> R:
    zone = ZoneInfo(appointment.timezone)
    guest = None
    if appointment.guest_email is not None:
        guest = GuestRead(
            name=appointment.guest_name or "",
            email=appointment.guest_email,
            phone=appointment.guest_phone,
        )
    return model(
        id=appointment.id,
        provider_id=appointment.provider_id,
        service_id=appointment.service_id,
        client_id=appointment.client_id,
        guest=guest,
        start_at=appointment.start_at.astimezone(zone),
        end_at=appointment.end_at.astimezone(zone),
        timezone=appointment.timezone,
        status=appointment.status,
        hold_until=appointment.hold_until.astimezone(zone) if appointment.hold_until else None,
        notes=appointment.notes,
        cancel_reason=appointment.cancel_reason,
        series_id=appointment.series_id,
        seat=_seat(appointment),
        team_booking_id=appointment.team_booking_id,
        created_at=appointment.created_at,
        updated_at=appointment.updated_at,
        history=[
            EventRead(
                at=event.at,
                actor_id=event.actor_id,
                actor_role=event.actor_role,
                action=event.action,
                from_status=event.from_status,
                to_status=event.to_status,
                from_start_at=event.from_start_at.astimezone(zone) if event.from_start_at else None,
                to_start_at=event.to_start_at.astimezone(zone) if event.to_start_at else None,
                reason=event.reason,
            )
            for event in appointment.events
        ],
        **extra,
    )


def _seat(appointment: Appointment) -> SeatRead | None:
    """Its session, if it is a seat: what is the attendee's own (the key, the size), never
    another attendee nor the seats taken."""
    if appointment.capacity <= 1:
        return None
    return SeatRead(session_key=appointment.session_key, capacity=appointment.capacity)


_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="referrer" content="no-referrer"><title>{title}</title></head>
<body style="font-family: sans-serif; line-height: 1.5; max-width: 40em; margin: 2em auto;">
{body}
</body>
</html>
"""


def verification_page(kept: str = "booking") -> str:
    """What a guest's verification link opens: a button that posts to the same address
    (a GET verifies nothing: mail scanners open links). ``kept``: "booking" or "series"."""
    body = (
        f"<h1>Keep your {kept}</h1>"
        f"<p>Press the button to confirm your email and keep the {kept}.</p>"
        '<form method="post"><button type="submit">Confirm my email</button></form>'
    )
    return _PAGE.format(title="Confirm your email", body=body)


def verified_page(appointment: AppointmentRead) -> str:
    """What the page's button answers: the booking kept."""
    waiting = appointment.status == "pending"
    then = " It now awaits the provider's confirmation." if waiting else ""
    start = escape(appointment.start_at.isoformat())
    body = f"<h1>Thank you</h1><p>Your booking at {start} is kept.{then}</p>"
    return _PAGE.format(title="Booking kept", body=body)


def series_verified_page(series: SeriesRead) -> str:
    """What a series' page's button answers: the series kept."""
    kept = [o for o in series.occurrences if o.status in ("pending", "confirmed")]
    waiting = any(o.status == "pending" for o in kept)
    then = " It now awaits the provider's confirmation." if waiting else ""
    first = escape(kept[0].start_at.isoformat()) if kept else ""
    body = f"<h1>Thank you</h1><p>Your series of {len(kept)} from {first} is kept.{then}</p>"
    return _PAGE.format(title="Series kept", body=body)
