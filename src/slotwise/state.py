"""What one application instance shares across requests, reachable as a dependency: the
shared platform (``shared.Shared``) and the domains' services. Only routers of the domains
and the app factory import this; services receive what they use, never the state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from slotwise.availability.ranking import HistoryReader, Ranker
from slotwise.availability.slots import SlotListings
from slotwise.availability.stream import SlotStreams
from slotwise.booking.queue import BookingQueue
from slotwise.booking.terms import TermsCache
from slotwise.calendars.service import Appointments
from slotwise.external.keys import CalendarKeys
from slotwise.external.sync import SyncPolicy
from slotwise.shared import NowDep as NowDep
from slotwise.shared import Shared
from slotwise.shared import WallClock as WallClock
from slotwise.shared import get_now as get_now
from slotwise.shared import wall_clock as wall_clock


@dataclass
class AppState(Shared):
    slots: SlotListings
    streams: SlotStreams
    terms: TermsCache
    bookings: BookingQueue
    # What calendars read of booking (booking.publish.CalendarAppointments).
    calendar_appointments: Appointments
    # What seals connected calendars' credentials (external.keys).
    calendar_keys: CalendarKeys
    # How connected calendars are synced (on demand, and before a booking if the settings
    # say so).
    calendar_sync: SyncPolicy
    # How suggestions rank slots, and the clients' history they read (booking.history).
    ranker: Ranker
    client_history: HistoryReader
    # What placing a new time awaits first (the providers' references, now): their calendars
    # synced, with SLOTWISE_CALENDAR_SYNC_BEFORE_BOOKING; None otherwise. Through
    # calendars_synced.
    before_booking: Callable[[Sequence[str], datetime], Awaitable[None]] | None = None

    @property
    def syncs_calendars_first(self) -> bool:
        """Whether a new time is placed only after its providers' calendars are synced
        (``calendars_synced``): what finding the providers costs is spent only then."""
        return self.before_booking is not None

    async def calendars_synced(self, refs: Sequence[str], now: datetime) -> None:
        """Before a new time of these providers is placed (a booking, a series, a team's
        booking, a reschedule, a hold): their connected calendars synced, if
        SLOTWISE_CALENDAR_SYNC_BEFORE_BOOKING says so; nothing otherwise. Awaited before
        the request's write transaction begins: on SQLite that transaction holds the
        process's write lock, which the sync's own write must take."""
        if self.before_booking is not None and refs:
            await self.before_booking(refs, now)

    async def aclose(self) -> None:
        """Let go of connections: the slot cache's listener, the pool, Redis (once the
        bookings under way are written)."""
        await self.bookings.aclose()
        await self.streams.aclose()
        await self.slots.aclose()
        await self.api_key_uses.settle()
        await self.db.dispose()
        if self.redis is not None:
            await self.redis.aclose()


async def get_app_state(request: Request) -> AppState:
    state: AppState = request.app.state.slotwise
    return state


StateDep = Annotated[AppState, Depends(get_app_state)]
