"""Housekeeping: finished rows older than the retention are deleted, nothing else is."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from typer.testing import CliRunner

from slotwise import housekeeping
from slotwise.auth.models import PasswordResetToken, RefreshToken
from slotwise.cli import app as cli
from slotwise.config import Settings, get_settings
from slotwise.notifications.models import OutboxMessage, OutboxStatus
from slotwise.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from tests.factories import count_rows, signed_in

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)
OLD = NOW - RETENTION - timedelta(days=1)
RECENT = NOW - RETENTION + timedelta(days=1)


def _mail(status: OutboxStatus, created_at: datetime) -> OutboxMessage:
    return OutboxMessage(
        message_id=f"<{uuid.uuid4().hex}@test>",
        kind="booking_confirmed",
        recipient_email="someone@example.com",
        recipient_name="Someone",
        recipient_timezone="UTC",
        context={},
        status=status,
        due_at=created_at,
        created_at=created_at,
    )


def _delivery(subscription_id: uuid.UUID, status: DeliveryStatus, created_at: datetime) -> Any:
    event_id = uuid.uuid4()
    delivery = WebhookDelivery(
        subscription_id=subscription_id,
        event_id=event_id,
        event_type="booking.created",
        payload={},
        status=status,
        due_at=created_at,
        created_at=created_at,
    )
    attempt = WebhookAttempt(
        subscription_id=subscription_id,
        event_id=event_id,
        attempted_at=created_at,
        status_code=500,
        duration_ms=3,
    )
    return delivery, attempt


async def _seed(app: FastAPI, user_id: uuid.UUID) -> dict[str, set[object]]:
    """Rows on both sides of every line housekeeping draws; what must survive, by table."""
    subscription = WebhookSubscription(
        owner_id=user_id, url="https://hooks.example.com/in", event_types=[], secret="s" * 32
    )
    mail = {
        (status, when): _mail(status, when) for status in OutboxStatus for when in (OLD, RECENT)
    }
    async with app.state.slotwise.db.transaction(writes=True) as session:
        session.add(subscription)
        await session.flush()
        deliveries = {
            (status, when): _delivery(subscription.id, status, when)
            for status in DeliveryStatus
            for when in (OLD, RECENT)
        }
        session.add_all(mail.values())
        for delivery, attempt in deliveries.values():
            session.add_all([delivery, attempt])
        expired = PasswordResetToken(
            token_hash="a" * 64, user_id=user_id, expires_at=NOW - timedelta(minutes=1)
        )
        valid = PasswordResetToken(
            token_hash="b" * 64, user_id=user_id, expires_at=NOW + timedelta(minutes=1)
        )
        session.add_all([expired, valid])
        await session.flush()
        return {
            "mail": {
                row.id
                for (status, when), row in mail.items()
                if status is OutboxStatus.PENDING or when == RECENT
            },
            "deliveries": {
                row.event_id
                for (status, when), (row, _) in deliveries.items()
                if status is DeliveryStatus.PENDING or when == RECENT
            },
            "resets": {valid.id},
        }


async def test_a_pass_deletes_only_finished_rows_past_their_time(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    account = await signed_in(client)  # a refresh token, valid for days
    me = (await client.get("/users/me", headers=account.headers)).json()
    kept = await _seed(app, uuid.UUID(me["id"]))
    database = app.state.slotwise.db

    pruned = await housekeeping.prune(database, now=NOW, retention=RETENTION)

    assert pruned.counts == {
        "refresh_tokens": 1,  # the sign-in's token: NOW is years after it expired
        "password_reset_tokens": 1,
        "outbox_messages": 3,  # sent, cancelled and dead, older than the retention
        "webhook_attempts": 2,  # those of the delivered and the failed old deliveries
        "webhook_deliveries": 2,
    }
    async with database.session(writes=False) as session:
        assert set(await session.scalars(select(OutboxMessage.id))) == kept["mail"]
        assert set(await session.scalars(select(WebhookDelivery.event_id))) == kept["deliveries"]
        # Every delivery left keeps its attempt, the old pending one too.
        assert set(await session.scalars(select(WebhookAttempt.event_id))) == kept["deliveries"]
        assert set(await session.scalars(select(PasswordResetToken.id))) == kept["resets"]
    again = await housekeeping.prune(database, now=NOW, retention=RETENTION)
    assert again.total == 0


async def test_a_live_refresh_token_survives_and_still_works(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    account = await signed_in(client)
    now = datetime.now(UTC)

    pruned = await housekeeping.prune(app.state.slotwise.db, now=now, retention=RETENTION)

    assert pruned.counts["refresh_tokens"] == 0
    assert await count_rows(app, RefreshToken) == 1
    refreshed = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refreshed.status_code == 200, refreshed.text


async def test_large_backlogs_go_in_chunks(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "CHUNK", 2)
    async with app.state.slotwise.db.transaction(writes=True) as session:
        session.add_all([_mail(OutboxStatus.SENT, OLD) for _ in range(5)])

    pruned = await housekeeping.prune(app.state.slotwise.db, now=NOW, retention=RETENTION)

    assert pruned.counts["outbox_messages"] == 5
    assert await count_rows(app, OutboxMessage) == 0


async def test_the_worker_loop_prunes_then_stops(settings: Settings, app: FastAPI) -> None:
    async with app.state.slotwise.db.transaction(writes=True) as session:
        session.add(_mail(OutboxStatus.SENT, OLD))
    stop = asyncio.Event()
    kept_30_days = settings.model_copy(update={"retention_days": RETENTION.days})
    runner = asyncio.create_task(housekeeping.run(kept_30_days, stop, clock=lambda: NOW))
    for _ in range(100):
        if await count_rows(app, OutboxMessage) == 0:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(runner, timeout=5)
    assert await count_rows(app, OutboxMessage) == 0


def test_the_prune_command_reports_what_it_deleted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOTWISE_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["prune"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "outbox_messages: 0 deleted" in result.output
    assert "webhook_deliveries: 0 deleted" in result.output
