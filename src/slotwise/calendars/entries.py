"""Bookings as calendar entries, from what booking tells of them (``BookingFacts``)."""

from __future__ import annotations

from slotwise.booking.facts import BookingFacts
from slotwise.calendars.ics import CalendarEntry


def entry(booking: BookingFacts) -> CalendarEntry:
    parties = booking.parties
    return CalendarEntry(
        appointment_id=booking.appointment_id,
        sequence=booking.sequence,
        status=booking.status.value,
        start_at=booking.start_at,
        end_at=booking.end_at,
        title=parties.title,
        provider_name=parties.provider.name,
        provider_email=parties.provider.email,
        client_name=parties.client.name,
        client_email=parties.client.email,
        notes=booking.notes,
    )
