"""Small helpers of the external calendar tests: a provider in New York, a calendar connected
and synced, what is stored."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.availability.models import CalendarBusy
from slotwise.providers.models import Provider
from tests.factories import Account, bookable_provider


async def new_york_provider(client: httpx.AsyncClient) -> tuple[Account, dict[str, Any]]:
    """Open 09:00-17:00 New York every day, 60-minute sessions, bookable 60 days ahead."""
    return await bookable_provider(
        client, timezone="America/New_York", session_duration_minutes=60, max_advance_days=60
    )


async def connect(
    client: httpx.AsyncClient, account: Account, url: str, **extra: object
) -> dict[str, Any]:
    body = {"kind": "ics_url", "url": url, **extra}
    made = await client.post("/providers/me/calendars", headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    created: dict[str, Any] = made.json()
    return created


async def sync(client: httpx.AsyncClient, account: Account, calendar_id: str) -> dict[str, Any]:
    synced = await client.post(
        f"/providers/me/calendars/{calendar_id}/sync", headers=account.headers
    )
    assert synced.status_code == 200, synced.text
    answer: dict[str, Any] = synced.json()
    return answer


async def stored_busy(app: FastAPI, calendar_id: str) -> list[tuple[str, str]]:
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = await session.execute(
            select(CalendarBusy.start_at, CalendarBusy.end_at)
            .where(CalendarBusy.calendar_id == uuid.UUID(calendar_id))
            .order_by(CalendarBusy.start_at)
        )
        return [(_utc(row.start_at), _utc(row.end_at)) for row in rows]


def _utc(at: datetime) -> str:
    return at.isoformat()[:16]


async def rules_version(app: FastAPI, provider_id: str) -> int:
    async with app.state.slotwise.db.session(writes=False) as session:
        version = await session.scalar(
            select(Provider.rules_version).where(Provider.id == uuid.UUID(provider_id))
        )
        assert version is not None
        return int(version)


async def slot_times(client: httpx.AsyncClient, handle: str, on_date: str) -> list[str]:
    """The local start times offered on a date."""
    listed = await client.get(f"/providers/{handle}/slots", params={"date": on_date})
    assert listed.status_code == 200, listed.text
    return [slot["start_at"][11:16] for slot in listed.json()["slots"]]
