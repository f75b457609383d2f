"""A CalDAV calendar's events in a window (step 5 fills this in)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slotwise.outbound import OutboundGuard


class CaldavFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def busy_ics(
    guard: OutboundGuard, secret: dict[str, Any], *, start_at: datetime, end_at: datetime
) -> bytes:
    """The calendar's events in ``[start_at, end_at)`` as one iCalendar document."""
    raise CaldavFailed("CalDAV calendars are not read yet")
