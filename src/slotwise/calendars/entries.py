"""Bookings as calendar entries, from what booking tells of them (``BookingFacts``)."""

from __future__ import annotations

from slotwise.booking.facts import BookingFacts
from slotwise.calendars.ics import CalendarEntry, SeriesRule


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
        series=_rule(booking),
        recurrence_at=booking.recurrence_at,
    )


def _rule(booking: BookingFacts) -> SeriesRule | None:
    series = booking.series
    if series is None:
        return None
    return SeriesRule(
        series_id=series.series_id,
        timezone=series.timezone,
        first_time=series.first_time,
        duration=series.duration,
        every_weeks=series.every_weeks,
        count=series.count,
        sequence=series.sequence,
    )
