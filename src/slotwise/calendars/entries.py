"""Bookings as calendar entries, from what booking tells of them (``BookingFacts``, and a
provider's group sessions as ``SessionFacts``)."""

from __future__ import annotations

from slotwise.booking.facts import BookingFacts, SessionFacts
from slotwise.calendars.ics import CalendarEntry, SeriesRule, SessionSeats


def entry(booking: BookingFacts | SessionFacts) -> CalendarEntry:
    if isinstance(booking, SessionFacts):
        return session_entry(booking)
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


def session_entry(found: SessionFacts) -> CalendarEntry:
    """A group session as one event: UID ``<session key>@slotwise``, each attendee an ATTENDEE."""
    return CalendarEntry(
        appointment_id=found.session_key,
        sequence=found.sequence,
        status=found.status.value,
        start_at=found.start_at,
        end_at=found.end_at,
        title=found.title,
        provider_name=found.provider.name,
        provider_email=found.provider.email,
        client_name="",
        client_email="",
        notes=found.notes,
        session=SessionSeats(
            capacity=found.capacity,
            attendees=tuple((party.name, party.email) for party in found.attendees),
        ),
    )
