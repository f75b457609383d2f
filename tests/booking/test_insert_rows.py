"""db.insert_rows: a change's rows in several tables; on PostgreSQL one statement of
unnested column arrays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from sqlalchemy import Table, event, select
from sqlalchemy.exc import DBAPIError

from slotwise.db import insert_rows, table_of
from slotwise.models import Appointment, OutboxMessage
from slotwise.notifications.models import OutboxStatus
from slotwise.users.models import Role, RoleChange, User

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


async def test_several_tables_are_one_statement_on_postgresql(app: FastAPI) -> None:
    """On PostgreSQL the rows of every table go in one statement (one round trip), and the
    same shape of rows is the same statement again."""
    database = app.state.slotwise.db
    if database.is_sqlite:
        pytest.skip("SQLite writes one INSERT per table")
    user = User(email="owner@example.com", full_name="Owner", role=Role.CLIENT)
    user.hashed_password = "-"
    async with database.transaction(writes=True) as session:
        session.add(user)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    def rows() -> list[tuple[Table, list[dict[str, object]]]]:
        change = {
            "id": uuid.uuid4(),
            "user_id": user.id,
            "changed_by_id": None,
            "changed_at": NOW,
            "from_role": Role.CLIENT,
            "to_role": Role.PROVIDER,
        }
        return [(table_of(RoleChange), [change]), (table_of(OutboxMessage), [message()])]

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(2):
            async with database.transaction(writes=True) as session:
                await insert_rows(session, rows())
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) == 2
    assert statements[0] == statements[1]
    async with database.session(writes=False) as session:
        changes = list(await session.scalars(select(RoleChange)))
        assert len(list(await session.scalars(select(OutboxMessage)))) == 2
    assert [(c.user_id, c.from_role, c.to_role, c.changed_at) for c in changes] == [
        (user.id, Role.CLIENT, Role.PROVIDER, NOW)
    ] * 2


async def test_sqlite_stores_what_sqlalchemys_own_insert_stores(app: FastAPI) -> None:
    """On SQLite the rows go to the driver already converted (``bulk._positional_insert``):
    each column's stored value is the very one SQLAlchemy's Core INSERT stores for it."""
    database = app.state.slotwise.db
    if not database.is_sqlite:
        pytest.skip("SQLite's own INSERT per table")
    table = table_of(OutboxMessage)
    ours = message(recipient_name="Zoë", ics="BEGIN:VCALENDAR", appointment_id=None)
    general = {**ours, "id": uuid.uuid4(), "message_id": "<general@slotwise>"}
    async with database.transaction(writes=True) as session:
        await insert_rows(session, [(table, [ours])])
        await (await session.connection()).execute(table.insert(), [general])
    async with database.engine.connect() as connection:
        stored = (await connection.exec_driver_sql("SELECT * FROM outbox_messages")).all()
    by_message = {row.message_id: row._asdict() for row in stored}
    written, expected = by_message[ours["message_id"]], by_message["<general@slotwise>"]
    assert written["due_at"] == "2027-03-01 12:00:00.000000"
    for key in ("id", "message_id"):
        written.pop(key), expected.pop(key)
    assert written == expected


async def test_a_column_with_a_default_must_be_given(app: FastAPI) -> None:
    """No Python-side default is added to the rows (on either database): leaving out a
    column that has one is a mistake, refused before anything is sent."""
    database = app.state.slotwise.db
    row = message()
    del row["created_at"]
    with pytest.raises(ValueError, match="outbox_messages without created_at"):
        async with database.transaction(writes=True) as session:
            await insert_rows(session, [(table_of(OutboxMessage), [row])])
