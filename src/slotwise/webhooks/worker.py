"""The webhook worker: claims due deliveries (``slotwise.leases``, as the mail worker does),
signs each per Standard Webhooks, posts it through the outbound guard, logs the attempt
and records the outcome.

A delivery succeeds on a 2xx answer. Anything else (a refusal of the guard, a timeout, a
non-2xx status) is retried after ``base * 2**(attempts-1)`` until ``webhook_max_attempts``,
then kept as failed. A subscription with no success for ``webhook_disable_after_hours``
since its first failure is disabled, and its owner emailed through the mail outbox.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from slotwise import leases, polling
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.notifications import outbox
from slotwise.outbound import OutboundGuard, OutboundResponse, Refused
from slotwise.users.models import User
from slotwise.webhooks import queue
from slotwise.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def signature(
    subscription: WebhookSubscription, *, msg_id: str, sent_at: datetime, body: bytes
) -> str:
    """The ``webhook-signature`` header: ``v1,<base64>`` by the secret, and by the one it
    replaced while that still signs (space-separated, as Standard Webhooks allows)."""
    keys = [subscription.secret]
    until = subscription.previous_secret_until
    if subscription.previous_secret is not None and until is not None and sent_at < until:
        keys.append(subscription.previous_secret)
    return " ".join(Webhook(key).sign(msg_id, sent_at, body) for key in keys)


@dataclass
class Outcome:
    delivered: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def claimed(self) -> int:
        return self.delivered + self.retried + self.failed


@dataclass(frozen=True, slots=True)
class _Tried:
    response: OutboundResponse | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.response is not None and 200 <= self.response.status_code < 300


@dataclass
class WebhookWorker:
    """``now`` (the caller's) decides what is due; ``sent_clock`` stamps the signature,
    which receivers check against their own clock."""

    db: Database
    settings: Settings
    guard: OutboundGuard
    worker_id: str
    sent_clock: Clock = field(default=wall_clock)

    async def run_once(self, *, now: datetime) -> Outcome:
        outcome = Outcome()
        claimed = await leases.claim(
            self.db,
            WebhookDelivery,
            pending=DeliveryStatus.PENDING,
            now=now,
            limit=self.settings.worker_batch_size,
            lease=timedelta(seconds=self.settings.outbox_lease_seconds),
            worker_id=self.worker_id,
            order_by=(WebhookDelivery.due_at, WebhookDelivery.event_id),
        )
        for delivery in claimed:
            await self._deliver(delivery, now=now, outcome=outcome)
        return outcome

    async def run_until_idle(self, *, now: datetime) -> Outcome:
        total = Outcome()
        while True:
            outcome = await self.run_once(now=now)
            total.delivered += outcome.delivered
            total.retried += outcome.retried
            total.failed += outcome.failed
            if outcome.claimed < self.settings.worker_batch_size:
                return total

    async def _deliver(self, delivery: WebhookDelivery, *, now: datetime, outcome: Outcome) -> None:
        async with self.db.session(writes=False) as session:
            subscription = await session.get(WebhookSubscription, delivery.subscription_id)
            entitled = subscription is not None and await queue.still_entitled(
                session, subscription.id
            )
        if subscription is None:  # deleted since: its deliveries went with it
            return
        if not subscription.is_active:
            tried = _Tried(None, "the subscription is not active", 0)
        elif not entitled:  # its owner was demoted, deactivated or suspended since
            tried = _Tried(None, "the subscription's owner may no longer receive events", 0)
        else:
            tried = await self._post(subscription, delivery)
        await self._record(subscription, delivery, tried, now=now, outcome=outcome)

    async def _post(self, subscription: WebhookSubscription, delivery: WebhookDelivery) -> _Tried:
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        msg_id = str(delivery.event_id)
        sent_at = self.sent_clock()
        headers = {
            "content-type": "application/json",
            "user-agent": "Slotwise-Webhooks/1",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature(subscription, msg_id=msg_id, sent_at=sent_at, body=body),
        }
        started = time.monotonic()
        response, error = None, None
        try:
            response = await self.guard.post(subscription.url, content=body, headers=headers)
        except Refused as refused:
            error = f"refused: {refused.reason}"
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
        duration_ms = round((time.monotonic() - started) * 1000)
        if response is not None and not 200 <= response.status_code < 300:
            error = f"HTTP {response.status_code}"
        return _Tried(response, error, duration_ms)

    async def _record(
        self,
        subscription: WebhookSubscription,
        delivery: WebhookDelivery,
        tried: _Tried,
        *,
        now: datetime,
        outcome: Outcome,
    ) -> None:
        attempts = delivery.attempts + 1
        if tried.ok:
            status, due_at = DeliveryStatus.DELIVERED, delivery.due_at
            outcome.delivered += 1
        elif attempts >= self.settings.webhook_max_attempts or not subscription.is_active:
            status, due_at = DeliveryStatus.FAILED, delivery.due_at
            outcome.failed += 1
        else:
            status = DeliveryStatus.PENDING
            due_at = now + leases.backoff(self.settings.webhook_retry_base_seconds, attempts)
            outcome.retried += 1
        excerpt = None
        if tried.response is not None:
            excerpt = tried.response.body.decode("utf-8", errors="replace")
        log.info(
            "webhook_attempt",
            event_id=str(delivery.event_id),
            subscription_id=str(subscription.id),
            ok=tried.ok,
            attempts=attempts,
        )
        async with self.db.session(writes=True) as session, session.begin():
            session.add(
                WebhookAttempt(
                    id=uuid.uuid4(),
                    subscription_id=subscription.id,
                    event_id=delivery.event_id,
                    attempted_at=now,
                    status_code=tried.response.status_code if tried.response else None,
                    duration_ms=tried.duration_ms,
                    error=tried.error,
                    response_excerpt=excerpt,
                )
            )
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.subscription_id == delivery.subscription_id,
                    WebhookDelivery.event_id == delivery.event_id,
                    WebhookDelivery.claimed_by == self.worker_id,
                )
                .values(
                    status=status,
                    attempts=attempts,
                    due_at=due_at,
                    last_error=tried.error,
                    delivered_at=now if tried.ok else None,
                    locked_until=None,
                )
            )
            if subscription.is_active:
                await self._follow_health(session, subscription, ok=tried.ok, now=now)

    async def _follow_health(
        self, session: AsyncSession, subscription: WebhookSubscription, *, ok: bool, now: datetime
    ) -> None:
        """A success clears the failing streak; a failure starts it, or, once it is long
        enough, disables the subscription and emails its owner."""
        row = await session.get(WebhookSubscription, subscription.id, with_for_update=True)
        if row is None or not row.is_active:
            return
        if ok:
            row.failing_since = None
            return
        if row.failing_since is None:
            row.failing_since = now
            return
        limit = timedelta(hours=self.settings.webhook_disable_after_hours)
        if now - row.failing_since < limit:
            return
        row.is_active = False
        row.disabled_at = now
        owner = await session.get(User, row.owner_id)
        if owner is not None:
            await outbox.enqueue_webhook_disabled(
                session,
                email=owner.email,
                name=owner.full_name,
                timezone=owner.timezone or self.settings.default_timezone,
                url=row.url,
                failing_since=row.failing_since,
                now=now,
            )
        log.warning("webhook_disabled", subscription_id=str(row.id))


async def run(settings: Settings, stop: asyncio.Event, *, clock: Clock = wall_clock) -> None:
    """``slotwise worker``'s webhook half: poll until stopped."""
    db = Database(settings.database_url, pool_size=2)
    worker = WebhookWorker(
        db=db,
        settings=settings,
        guard=OutboundGuard.from_settings(settings),
        worker_id=f"webhooks:{uuid.uuid4().hex[:8]}",
    )

    async def step() -> bool:  # a full batch: more may be due right now
        outcome = await worker.run_once(now=clock())
        return outcome.claimed >= settings.worker_batch_size

    try:
        await polling.poll(
            step,
            stop=stop,
            every_seconds=settings.worker_poll_seconds,
            failure_event="webhook_poll_failed",
        )
    finally:
        await db.dispose()
