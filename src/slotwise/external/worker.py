"""The calendar worker: every connected calendar not paused is synced when due, by one
worker at a time (``slotwise.leases``: a claimed calendar is leased to its worker, on
PostgreSQL with ``FOR UPDATE SKIP LOCKED``), beside the mail and webhook workers in
``slotwise worker``. A sync sets the calendar's next due time
(``SLOTWISE_CALENDAR_SYNC_MINUTES`` on), failed or not; a worker that dies mid-sync leaves
its lease to expire, and the calendar is synced again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from slotwise import leases, polling
from slotwise.calendars.service import Appointments
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.external.keys import CalendarKeys
from slotwise.external.models import ExternalCalendar, Standing
from slotwise.external.sync import SyncPolicy, sync
from slotwise.outbound import OutboundGuard

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
AT_ONCE = 4  # calendars synced side by side: their fetches overlap, their writes are short


def wall_clock() -> datetime:
    return datetime.now(UTC)


def policy_of(
    settings: Settings,
    guard: OutboundGuard | None = None,
    appointments: Appointments | None = None,
) -> SyncPolicy:
    return SyncPolicy.of(
        appointments=appointments,
        guard=guard or OutboundGuard.from_settings(settings),
        keys=CalendarKeys([key.get_secret_value() for key in settings.calendar_keys]),
        max_bytes=settings.calendar_max_bytes,
        sync_minutes=settings.calendar_sync_minutes,
        pause_after_hours=settings.calendar_pause_after_hours,
        default_timezone=settings.default_timezone,
    )


@dataclass
class CalendarWorker:
    db: Database
    policy: SyncPolicy
    worker_id: str
    batch_size: int = 20
    lease: timedelta = timedelta(minutes=5)

    async def run_once(self, *, now: datetime) -> int:
        """Sync the calendars due at ``now`` (up to a batch); how many were claimed."""
        claimed = await leases.claim(
            self.db,
            ExternalCalendar,
            pending=Standing.ACTIVE,
            now=now,
            limit=self.batch_size,
            lease=self.lease,
            worker_id=self.worker_id,
            order_by=(ExternalCalendar.due_at, ExternalCalendar.id),
        )
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(calendar_id: uuid.UUID) -> None:
            async with gate:
                try:
                    await sync(self.db, calendar_id, policy=self.policy, now=now)
                except Exception:  # one calendar's trouble is not the others'
                    log.exception("calendar_sync_crashed", calendar_id=str(calendar_id))

        await asyncio.gather(*(one(calendar.id) for calendar in claimed))
        return len(claimed)


async def run(
    settings: Settings,
    stop: asyncio.Event,
    *,
    appointments: Appointments | None = None,
    clock: Clock = wall_clock,
) -> None:
    """``slotwise worker``'s calendar part: poll until stopped. ``appointments``: what
    booking tells of a provider's bookings, to write them out (the worker command wires
    booking's in)."""
    db = Database(settings.database_url, pool_size=2)
    worker = CalendarWorker(
        db=db,
        policy=policy_of(settings, appointments=appointments),
        worker_id=f"calendars:{uuid.uuid4().hex[:8]}",
        batch_size=settings.worker_batch_size,
        lease=timedelta(seconds=settings.outbox_lease_seconds),
    )

    async def step() -> bool:  # a full batch: more may be due right now
        return await worker.run_once(now=clock()) >= worker.batch_size

    try:
        await polling.poll(
            step,
            stop=stop,
            every_seconds=settings.worker_poll_seconds,
            failure_event="calendar_poll_failed",
        )
    finally:
        await db.dispose()
