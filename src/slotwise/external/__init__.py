"""External calendars: a provider's own calendars, read as busy time (an iCalendar URL or a
CalDAV calendar) and, for one CalDAV calendar, written with the provider's bookings.

Sits beside notifications and calendars, above booking: booking hears of it through what the
app factory wires in (a sync before a booking), never by importing it; availability reads
the busy time it stores (``availability.models.CalendarBusy``), declared as a source of
slots and terms (``availability.sources``).
"""
