"""The reads that lock the appointments a change acts on find them by index, however many
appointments there are: a cancellation's or a reschedule's first statement does not grow
with the table."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking import repository
from tests.booking.test_queue import DAY
from tests.factories import Clock, bookable_provider, guest_booking

Read = Callable[[AsyncSession, uuid.UUID], Awaitable[object]]


async def _many(session: AsyncSession, appointment_id: uuid.UUID) -> object:
    return await repository.get_many_locked(session, [appointment_id])


async def _one(session: AsyncSession, appointment_id: uuid.UUID) -> object:
    return await repository.get(session, appointment_id, lock=True)


async def _by_token(session: AsyncSession, _appointment_id: uuid.UUID) -> object:
    return await repository.get_by_token_hash(session, "0" * 64, lock=True)  # a guest's


async def _plan(app: FastAPI, read: Read, appointment_id: uuid.UUID) -> list[str]:
    """The plan of the read's statement, as the database would run it (PostgreSQL: with
    sequential scans priced out, so that a plan left with no index to use shows it)."""
    database = app.state.slotwise.db
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    engine = database.engine.sync_engine
    async with database.transaction(writes=True) as session:
        event.listen(engine, "before_cursor_execute", capture)
        try:
            await read(session, appointment_id)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        statement, params = seen[-1]
        connection = await session.connection()
        if database.is_sqlite:
            rows = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
            return [str(row[3]) for row in rows]
        await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = await connection.exec_driver_sql("EXPLAIN " + statement, params)
        return [str(row[0]) for row in rows]


def _scans_every_appointment(plan: list[str], *, sqlite: bool) -> list[str]:
    """The plan's steps that read appointments other than by an index condition."""
    if sqlite:
        return [step for step in plan if step.startswith("SCAN ")]
    found = []
    for i, line in enumerate(plan):
        if " on appointments" in line and "Scan" in line:
            following = plan[i + 1] if i + 1 < len(plan) else ""
            if "Index Cond" not in following and "Recheck Cond" not in following:
                found.append(line)
    return found


async def test_the_reads_that_lock_a_changes_rows_search_by_index(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    made = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert made.status_code == 201, made.text
    appointment_id = uuid.UUID(made.json()["id"])
    sqlite = app.state.slotwise.db.is_sqlite
    for read in (_many, _one, _by_token):
        plan = await _plan(app, read, appointment_id)
        assert _scans_every_appointment(plan, sqlite=sqlite) == [], "\n".join(plan)
