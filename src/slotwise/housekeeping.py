"""Housekeeping: the rows that have served their purpose, deleted so tables stop growing.

What each table may lose, and when, is said here once:

- refresh tokens and password reset tokens past their expiry (an expired token is refused
  whether its row exists or not; reuse detection needs a rotated token's row only while
  the token could still be presented);
- emails sent, withdrawn or given up, and webhook deliveries delivered or given up, with
  their attempts, once older than ``SLOTWISE_RETENTION_DAYS`` (what was sent stays
  readable that long, for support and for the subscriber's delivery log).

Pending mail and deliveries are never touched, however old. The access-token denylist and
idempotency keys prune themselves where they are written (auth.revocation,
booking.idempotency).

The worker (`slotwise worker`) runs a pass every ``SLOTWISE_HOUSEKEEPING_MINUTES``;
`slotwise prune` runs one by hand. A pass deletes in chunks of ``CHUNK`` rows, each its own
short transaction, so it never holds locks on a large table for long and is safe in every
worker at once (two passes only find fewer rows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Delete, delete, select, tuple_

from slotwise import polling
from slotwise.auth.models import PasswordResetToken, RefreshToken
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.notifications.models import OutboxMessage, OutboxStatus
from slotwise.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery

log = structlog.get_logger(__name__)

CHUNK = 5_000

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many rows a pass deleted, by table."""

    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _chunks(model: Any, where: ColumnElement[bool]) -> Delete:
    """A DELETE of at most ``CHUNK`` rows of ``model`` matching ``where``, by primary key
    (SQLite and PostgreSQL both lack DELETE ... LIMIT; both take a row value IN a
    subquery)."""
    keys = list(model.__table__.primary_key.columns)
    chosen = select(*keys).where(where).limit(CHUNK)
    return delete(model).where(tuple_(*keys).in_(chosen))


async def _delete_all(db: Database, statement: Delete) -> int:
    deleted = 0
    while True:
        async with db.transaction(writes=True) as session:
            result: Any = await session.execute(statement)
        count: int = result.rowcount
        deleted += count
        if count < CHUNK:
            return deleted


async def prune(db: Database, *, now: datetime, retention: timedelta) -> Pruned:
    """One pass over every table housekeeping keeps short (see the module's docstring)."""
    before = now - retention
    finished_mail = OutboxMessage.status.in_(
        [OutboxStatus.SENT, OutboxStatus.CANCELLED, OutboxStatus.DEAD]
    )
    finished_delivery = WebhookDelivery.status.in_(
        [DeliveryStatus.DELIVERED, DeliveryStatus.FAILED]
    ) & (WebhookDelivery.created_at < before)
    pruned_deliveries = select(WebhookDelivery.subscription_id, WebhookDelivery.event_id).where(
        finished_delivery
    )
    steps: dict[str, Delete] = {
        "refresh_tokens": _chunks(RefreshToken, RefreshToken.expires_at < now),
        "password_reset_tokens": _chunks(PasswordResetToken, PasswordResetToken.expires_at < now),
        "outbox_messages": _chunks(
            OutboxMessage, finished_mail & (OutboxMessage.created_at < before)
        ),
        # A delivery's attempts first, then the delivery: attempts of a pending delivery stay.
        "webhook_attempts": _chunks(
            WebhookAttempt,
            tuple_(WebhookAttempt.subscription_id, WebhookAttempt.event_id).in_(pruned_deliveries),
        ),
        "webhook_deliveries": _chunks(WebhookDelivery, finished_delivery),
    }
    return Pruned({table: await _delete_all(db, statement) for table, statement in steps.items()})


def wall_clock() -> datetime:
    return datetime.now(UTC)


async def run(settings: Settings, stop: asyncio.Event, *, clock: Clock = wall_clock) -> None:
    """``slotwise worker``'s housekeeping: a pass now, then every
    ``housekeeping_minutes``, until stopped."""
    db = Database(settings.database_url, pool_size=1)
    retention = timedelta(days=settings.retention_days)

    async def step() -> bool:
        pruned = await prune(db, now=clock(), retention=retention)
        if pruned.total:
            log.info("housekeeping_pruned", **pruned.counts)
        return False  # a pass deletes all that is due

    try:
        await polling.poll(
            step,
            stop=stop,
            every_seconds=settings.housekeeping_minutes * 60,
            failure_event="housekeeping_failed",
        )
    finally:
        await db.dispose()
