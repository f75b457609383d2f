"""A change to an appointment (booking.change): loaded in one statement and written in one
(PostgreSQL) or one per table (SQLite), with its history and messages; the kept listing
follows it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Any

import aiosqlite
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select
from sqlalchemy.orm import selectinload

from slotwise.booking import change
from slotwise.booking.events import ActorRole
from slotwise.booking.models import Appointment, AppointmentEvent
from slotwise.db import Database
from slotwise.notifications import outbox
from slotwise.notifications.models import OutboxMessage, OutboxStatus
from tests.availability.test_slot_cache import HOURS, cache_in_use, hours
from tests.factories import BOOKING_NOW, Clock, bookable_provider, count_rows, signed_in

DAY = "2027-03-03"  # two days after BOOKING_NOW: the reminders (24 h before) are ahead


def statements_of(app: FastAPI) -> AbstractContextManager[list[str]]:
    """The statements the app runs inside the block."""
    return statements_on(app.state.slotwise.db)


@contextmanager
def statements_on(database: Database) -> Iterator[list[str]]:
    """The statements the database is sent inside the block."""
    seen: list[str] = []
    engine = database.engine.sync_engine

    def _seen(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", _seen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", _seen)


def _on_postgresql(app: FastAPI) -> bool:
    return bool(app.state.slotwise.db.engine.dialect.name == "postgresql")


async def _confirmed(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, Any]]:
    """A client's confirmed booking at 10:00 (with its reminders queued)."""
    _, profile = await bookable_provider(
        client,
        session_duration_minutes=60,
        requires_confirmation=False,
        cancellation_window_minutes=0,
    )
    customer = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=customer.headers,
        json={"provider_id": profile["id"], "start_datetime": f"{DAY}T10:00:00Z"},
    )
    assert booked.status_code == 201, booked.text
    return customer.headers, {**booked.json(), "handle": profile["public_handle"]}


async def _reminders(app: FastAPI, appointment_id: str, status: OutboxStatus) -> int:
    return await count_rows(
        app,
        OutboxMessage,
        appointment_id=uuid.UUID(appointment_id),
        kind=outbox.REMINDER,
        status=status,
    )


async def test_a_cancellation_is_one_load_and_one_write(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    headers, booked = await _confirmed(client)
    reminded = await _reminders(app, booked["id"], OutboxStatus.PENDING)
    assert reminded > 0
    with statements_of(app) as statements:
        response = await client.post(f"/appointments/{booked['id']}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["history"][-1]["to_status"] == "cancelled"
    changing = [s for s in statements if "appointment" in s or "outbox" in s]
    # The appointment with its history, provider, client and service (on SQLite, with
    # whether anyone is in its provider's line); then the change: one statement on
    # PostgreSQL; on SQLite the row, its history, the reminders withdrawn and the messages
    # queued. Then, on PostgreSQL, who waits for the freed time (booking.waitlist: nobody
    # here); on SQLite the load said nobody does, and nobody can join until the commit.
    assert len(changing) == (3 if _on_postgresql(app) else 5), changing
    assert changing[0].startswith("SELECT appointments.")
    waits = [s for s in changing if s.startswith("SELECT waitlist_entries.")]
    assert waits == (changing[-1:] if _on_postgresql(app) else []), changing
    others = [s for s in statements if s not in changing]
    # The caller, and who subscribes to its webhook event; on PostgreSQL, the provider's
    # lock that the waitlist is read under.
    locks = [s for s in others if "pg_advisory_xact_lock" in s]
    assert len(locks) == (1 if _on_postgresql(app) else 0), others
    assert len(others) - len(locks) <= 2, others
    aid = uuid.UUID(booked["id"])
    assert await count_rows(app, AppointmentEvent, appointment_id=aid) == 2
    assert await count_rows(app, OutboxMessage, appointment_id=aid, kind="booking_cancelled") == 2
    assert await _reminders(app, booked["id"], OutboxStatus.CANCELLED) == reminded
    assert await _reminders(app, booked["id"], OutboxStatus.PENDING) == 0


async def test_a_reschedule_keeps_the_reminders_it_schedules(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The old time's reminders are withdrawn and the new time's kept, though on
    PostgreSQL both are written by the same statement."""
    headers, booked = await _confirmed(client)
    reminded = await _reminders(app, booked["id"], OutboxStatus.PENDING)
    assert reminded > 0
    response = await client.post(
        f"/appointments/{booked['id']}/reschedule",
        headers=headers,
        json={"new_start_time": f"{DAY}T14:00:00Z"},
    )
    assert response.status_code == 200, response.text
    assert await _reminders(app, booked["id"], OutboxStatus.CANCELLED) == reminded
    assert await _reminders(app, booked["id"], OutboxStatus.PENDING) == reminded


async def test_the_kept_listing_follows_a_reschedule(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    await cache_in_use(app)
    headers, booked = await _confirmed(client)
    listed = await hours(client, booked["handle"])
    assert listed == [hour for hour in HOURS if hour != "10:00"]
    assert await hours(client, booked["handle"]) == listed  # kept
    response = await client.post(
        f"/appointments/{booked['id']}/reschedule",
        headers=headers,
        json={"new_start_time": f"{DAY}T14:00:00Z"},
    )
    assert response.status_code == 200, response.text
    assert await hours(client, booked["handle"]) == [hour for hour in HOURS if hour != "14:00"]


async def test_withdrawing_reminders_searches_the_appointments_messages(app: FastAPI) -> None:
    """Not every pending message (SQLite's planner, without statistics, took the (status,
    due_at) index when the status was compared as a column)."""
    if _on_postgresql(app):
        pytest.skip("PostgreSQL plans with statistics")
    async with app.state.slotwise.db.session(writes=False) as session:
        connection = await session.connection()
        compiled = outbox.WITHDRAW_REMINDERS.compile(dialect=connection.dialect)
        plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", ("x",))
        details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX ix_outbox_messages_appointment_id" in details, details


async def test_on_sqlite_a_changes_writes_travel_with_its_webhook_query(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: the row, its history, the reminders withdrawn and the messages queued are
    deferred (``db.deferred``) to the trip of the webhook events' query that follows them
    in ``change.write``: one trip to aiosqlite's thread for the whole write, where it was
    five, and the change is written all the same."""
    if _on_postgresql(app):
        pytest.skip("SQLite's driver adapter")
    headers, booked = await _confirmed(client)
    reminded = await _reminders(app, booked["id"], OutboxStatus.PENDING)
    trips: list[str] = []
    real_execute = aiosqlite.Connection._execute
    real_write = change.write

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any) -> Any:
        trips.append(fn.__name__)
        return await real_execute(self, fn, *args)

    async def written(*given: Any, **named: Any) -> None:
        trips.append("write begins")
        await real_write(*given, **named)
        trips.append("write ends")

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    monkeypatch.setattr(change, "write", written)
    response = await client.post(f"/appointments/{booked['id']}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    inside = trips[trips.index("write begins") + 1 : trips.index("write ends")]
    assert inside == ["_run"], trips
    aid = uuid.UUID(booked["id"])
    assert await count_rows(app, AppointmentEvent, appointment_id=aid) == 2
    assert await count_rows(app, OutboxMessage, appointment_id=aid, kind="booking_cancelled") == 2
    assert await _reminders(app, booked["id"], OutboxStatus.CANCELLED) == reminded


async def test_two_changes_of_one_appointment_written_together_are_written_in_turn(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """``write_each`` writes changes of one shape together, each row its own: the same
    appointment changed twice goes one change after the other, the second's values kept
    and both history rows written."""
    _, booked = await _confirmed(client)
    aid = uuid.UUID(booked["id"])
    database: Database = app.state.slotwise.db
    async with database.transaction(writes=True) as session:
        appointment = await session.scalar(
            select(Appointment)
            .where(Appointment.id == aid)
            .options(selectinload(Appointment.events))
        )
        assert appointment is not None
        written = [
            (
                change.apply(
                    appointment,
                    {"notes": notes},
                    actor=None,
                    role=ActorRole.ADMIN,
                    action="notes_updated",
                    now=BOOKING_NOW + timedelta(minutes=minutes),
                ),
                outbox.Batch(),
            )
            for minutes, notes in ((1, "first"), (2, "second"))
        ]
        with statements_on(database) as seen:
            await change.write_each(session, written)
    # One write each: on PostgreSQL a statement each, on SQLite an UPDATE each.
    opening = "WITH history AS" if _on_postgresql(app) else "UPDATE appointments SET"
    assert len([s for s in seen if s.startswith(opening)]) == 2, seen
    async with database.transaction(writes=False) as session:
        notes = await session.scalar(select(Appointment.notes).where(Appointment.id == aid))
    assert notes == "second"
    assert await count_rows(app, AppointmentEvent, appointment_id=aid, action="notes_updated") == 2
