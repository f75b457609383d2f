"""What this worker reports of its own bookings' changes (`changes.moved`, applied to its
kept listings before the response) is what the database's notice of the same commit says
(migration 0015: NOTIFY on PostgreSQL, the change log on SQLite), appointment by
appointment: one-to-one bookings, seats of a group session, guests' holds, cancellations
and moves. Kept listings rely on both saying the same (`availability.cache`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from slotwise.availability import changes
from slotwise.availability.busy import Moved
from slotwise.booking.busy import BUSY
from slotwise.config import Settings
from tests.availability.test_slot_cache import DAY, eventually
from tests.factories import Account, bookable_provider, guest_booking, signed_in


@pytest.fixture
async def notices(settings: Settings) -> AsyncIterator[list[Moved]]:
    """The appointments' notices the database gives, as `Moved` (PostgreSQL: heard on
    the channel; SQLite: read from the log when asked, see `_read_log`)."""
    heard: list[Moved] = []
    if not settings.database_url.startswith("postgresql"):
        yield heard
        return
    dsn = make_url(settings.database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))

    def listen(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith("{"):
            detail = json.loads(payload)
            heard.append(changes.moved_of(uuid.UUID(detail["provider_id"]), detail, BUSY.taken))

    await connection.add_listener(changes.CHANNEL, listen)
    try:
        yield heard
    finally:
        await connection.close()


async def _read_log(settings: Settings) -> list[Moved]:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT ref, detail FROM schedule_changes WHERE detail IS NOT NULL ORDER BY seq"
                )
            )
            return [
                changes.moved_of(uuid.UUID(ref), json.loads(detail), BUSY.taken)
                for ref, detail in rows
            ]
    finally:
        await engine.dispose()


def _last_by_appointment(moves: list[Moved]) -> dict[uuid.UUID, Moved]:
    return {move.appointment_id: move for move in moves}


async def test_this_workers_report_is_the_databases_notice(
    client: httpx.AsyncClient,
    settings: Settings,
    notices: list[Moved],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[Moved] = []
    report = changes.moved

    def recorded(session: Any, change: Moved) -> None:
        reported.append(change)
        report(session, change)

    monkeypatch.setattr(changes, "moved", recorded)
    account, profile = await bookable_provider(
        client, session_duration_minutes=60, verify_guest_email=True
    )
    group = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Class", "duration_minutes": 60, "capacity": 3},
    )
    assert group.status_code == 201, group.text
    clients: list[Account] = [await signed_in(client) for _ in range(3)]

    async def book(booker: Account, at: str, **extra: object) -> str:
        body = {"provider_id": profile["id"], "start_datetime": f"{DAY}T{at}:00Z", **extra}
        response = await client.post("/appointments/", headers=booker.headers, json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    one = await book(clients[0], "09:00")
    seats = [await book(booker, "11:00", service_id=group.json()["id"]) for booker in clients]
    held = await client.post(
        "/appointments/", json=guest_booking(profile["id"], f"{DAY}T14:00:00Z")
    )
    assert held.status_code == 201, held.text
    moved = await client.post(
        f"/appointments/{one}/reschedule",
        headers=clients[0].headers,
        json={"new_start_time": f"{DAY}T10:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    cancelled = await client.post(
        f"/appointments/{seats[1]}/cancel", headers=clients[1].headers, json={}
    )
    assert cancelled.status_code == 200, cancelled.text

    ours = _last_by_appointment(reported)
    assert len(ours) == 5  # every appointment above: this worker reported its changes
    if settings.database_url.startswith("postgresql"):

        async def all_heard() -> bool:  # each appointment's last notice, as it left it
            heard = _last_by_appointment(notices)
            return all(heard.get(appointment_id) == move for appointment_id, move in ours.items())

        assert await eventually(all_heard)
        theirs = _last_by_appointment(notices)
    else:
        theirs = _last_by_appointment(await _read_log(settings))
    for appointment_id, move in ours.items():
        assert theirs[appointment_id] == move, appointment_id
    seat = ours[uuid.UUID(seats[0])].taken
    assert seat is not None
    assert seat.capacity == 3
    assert seat.service_id is not None
    assert ours[uuid.UUID(seats[1])].taken is not None
    assert not ours[uuid.UUID(seats[1])].taken.takes_time  # cancelled
    hold = ours[uuid.UUID(held.json()["id"])].taken
    assert hold is not None
    assert hold.hold_until is not None
