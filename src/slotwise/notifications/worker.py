"""The outbox worker: claims due messages, sends them, records the outcome.

A claim is a lease (``slotwise.leases``, shared with the webhook worker). A worker that dies
mid-send leaves its lease to expire; the row is then sent again with the same Message-ID.
A failure is retried after ``base * 2**(attempts-1)``; after ``outbox_max_attempts`` the
row is kept as dead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import leases, polling
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.notifications import render
from slotwise.notifications.models import OutboxMessage, OutboxStatus
from slotwise.notifications.outbox import REMINDER, SECRET_LINKS
from slotwise.notifications.sender import Sender, sender_for

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
# Whether a reminder is still wanted: the appointment (by id) is still confirmed and starts
# at the time the reminder names. Booking answers it (``booking.publish.reminder_still_due``):
# notifications do not read booking's tables.
ReminderCheck = Callable[[AsyncSession, uuid.UUID, datetime], Awaitable[bool]]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Outcome:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    withdrawn: int = 0

    @property
    def claimed(self) -> int:
        return self.sent + self.retried + self.dead + self.withdrawn


@dataclass
class Worker:
    db: Database
    settings: Settings
    sender: Sender
    reminder_still_due: ReminderCheck
    worker_id: str = field(default_factory=new_worker_id)

    async def run_once(self, *, now: datetime) -> Outcome:
        """Deliver what is due at ``now`` (one batch); the clock is the caller's."""
        outcome = Outcome()
        for row in await self._claim(now):
            await self._deliver(row, now=now, outcome=outcome)
        return outcome

    async def run_until_idle(self, *, now: datetime) -> Outcome:
        total = Outcome()
        while True:
            outcome = await self.run_once(now=now)
            for name in ("sent", "retried", "dead", "withdrawn"):
                setattr(total, name, getattr(total, name) + getattr(outcome, name))
            if outcome.claimed < self.settings.worker_batch_size:
                return total

    async def run_forever(self, stop: asyncio.Event, *, clock: Clock = wall_clock) -> None:
        log.info("worker_started", worker_id=self.worker_id)

        async def step() -> bool:  # a full batch: more may be due right now
            outcome = await self.run_once(now=clock())
            return outcome.claimed >= self.settings.worker_batch_size

        await polling.poll(
            step,
            stop=stop,
            every_seconds=self.settings.worker_poll_seconds,
            failure_event="worker_poll_failed",
        )
        log.info("worker_stopped", worker_id=self.worker_id)

    async def _claim(self, now: datetime) -> list[OutboxMessage]:
        return await leases.claim(
            self.db,
            OutboxMessage,
            pending=OutboxStatus.PENDING,
            now=now,
            limit=self.settings.worker_batch_size,
            lease=timedelta(seconds=self.settings.outbox_lease_seconds),
            worker_id=self.worker_id,
            order_by=(OutboxMessage.due_at, OutboxMessage.id),
        )

    async def _still_wanted(self, row: OutboxMessage) -> bool:
        """A reminder goes only for an appointment still confirmed at the time it named."""
        if row.kind != REMINDER:
            return True
        start_at = row.context.get("start_at")
        if row.appointment_id is None or start_at is None:
            return False
        async with self.db.session(writes=False) as session:
            return await self.reminder_still_due(
                session, row.appointment_id, datetime.fromisoformat(start_at)
            )

    async def _deliver(self, row: OutboxMessage, *, now: datetime, outcome: Outcome) -> None:
        if not await self._still_wanted(row):
            await self._finish(row, status=OutboxStatus.CANCELLED, now=now)
            outcome.withdrawn += 1
            return
        try:
            message = render.email(row, sender=self.settings.mail_from)
            await self.sender.send(message)
        except Exception as exc:  # any failure to send is retried, then kept as dead
            await self._failed(row, error=f"{type(exc).__name__}: {exc}"[:2000], now=now)
            if row.attempts + 1 >= self.settings.outbox_max_attempts:
                outcome.dead += 1
            else:
                outcome.retried += 1
            return
        await self._finish(row, status=OutboxStatus.SENT, now=now)
        outcome.sent += 1
        log.info("mail_sent", message_id=row.message_id, kind=row.kind)

    async def _finish(self, row: OutboxMessage, *, status: OutboxStatus, now: datetime) -> None:
        async with self.db.session(writes=True) as session, session.begin():
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.claimed_by == self.worker_id)
                .values(
                    status=status,
                    sent_at=now if status is OutboxStatus.SENT else None,
                    locked_until=None,
                    **_secrets_removed(row),
                )
            )

    async def _failed(self, row: OutboxMessage, *, error: str, now: datetime) -> None:
        attempts = row.attempts + 1
        dead = attempts >= self.settings.outbox_max_attempts
        delay = leases.backoff(self.settings.outbox_retry_base_seconds, attempts)
        log.warning("mail_failed", message_id=row.message_id, attempts=attempts, dead=dead)
        async with self.db.session(writes=True) as session, session.begin():
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.claimed_by == self.worker_id)
                .values(
                    attempts=attempts,
                    last_error=error,
                    status=OutboxStatus.DEAD if dead else OutboxStatus.PENDING,
                    due_at=row.due_at if dead else now + delay,
                    locked_until=None,
                    **(_secrets_removed(row) if dead else {}),
                )
            )


def _secrets_removed(row: OutboxMessage) -> dict[str, Any]:
    """The column values that drop a finished message's secret: a guest's manage link works
    for as long as the booking, a verification link until its hold ends, a password reset
    link for an hour, so each is kept only
    until its message is sent or given up."""
    if SECRET_LINKS.isdisjoint(row.context):
        return {}
    return {
        "context": {key: value for key, value in row.context.items() if key not in SECRET_LINKS}
    }


async def run(
    settings: Settings, reminder_still_due: ReminderCheck, stop: asyncio.Event | None = None
) -> None:
    """``slotwise worker``: poll until stopped."""
    db = Database(settings.database_url, pool_size=2)
    worker = Worker(
        db=db,
        settings=settings,
        sender=sender_for(settings),
        reminder_still_due=reminder_still_due,
    )
    try:
        await worker.run_forever(stop or asyncio.Event())
    finally:
        await db.dispose()
