"""db.insert_rows: a change's rows in several tables; on PostgreSQL one statement of
unnested column arrays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from slotwise.db import insert_rows, table_of
from slotwise.models import Appointment, OutboxMessage
from slotwise.notifications.models import OutboxStatus

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def message(**values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": uuid.uuid4(),
        "message_id": f"<{uuid.uuid4()}@slotwise>",
        "kind": "booking_received",
        "recipient_email": "someone@example.com",
        "recipient_name": "Someone",
        "recipient_timezone": "Europe/Paris",
        "context": {"title": "Piano", "nested": {"list": [1, 2]}, "none": None},
        "ics": None,
        "appointment_id": None,
        "status": OutboxStatus.PENDING,
        "due_at": NOW,
        "attempts": 0,
        "last_error": None,
        "created_at": NOW,
    }
    row.update(values)
    return row


async def test_rows_arrive_with_their_types(app: FastAPI) -> None:
    database = app.state.slotwise.db
    rows = [message(), message(recipient_name="Zoë", ics="BEGIN:VCALENDAR")]
    async with database.transaction(writes=True) as session:
        await insert_rows(session, [(table_of(Appointment), []), (table_of(OutboxMessage), rows)])
    async with database.session(writes=False) as session:
        stored = {m.id: m for m in await session.scalars(select(OutboxMessage))}
    assert set(stored) == {row["id"] for row in rows}
    for row in rows:
        found = stored[row["id"]]
        assert found.context == row["context"]
        assert found.due_at == NOW
        assert found.due_at.tzinfo is not None
        assert found.status is OutboxStatus.PENDING
        assert (found.recipient_name, found.ics) == (row["recipient_name"], row["ics"])


async def test_a_value_too_long_is_refused_not_cut(app: FastAPI) -> None:
    database = app.state.slotwise.db
    if not database.url.startswith("postgresql"):
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    too_long = message(recipient_name="x" * 201)  # the column is VARCHAR(200)
    with pytest.raises(DBAPIError):
        async with database.transaction(writes=True) as session:
            await insert_rows(session, [(table_of(OutboxMessage), [message(), too_long])])
    async with database.session(writes=False) as session:
        assert list(await session.scalars(select(OutboxMessage))) == []  # nothing half-written
