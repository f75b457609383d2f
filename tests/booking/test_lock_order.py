"""Statements that lock several appointments take their row locks in the order of the rows'
ids, as the booking queue's cancellations do (``repository.get_many_locked``): a series'
occurrences and a group session's seats too. Locked in another order (the rule's, the
seats'), a series cancelled while a batch cancels two of its occurrences could each hold a
row the other waits for.

PostgreSQL only: SQLite has no row locks (its writers are serialized whole, BEGIN
IMMEDIATE).

Each test finds two rows whose ids run against the statement's own order (``later`` comes
after ``earlier`` in it but has the smaller id), holds ``later``'s lock in a transaction of
its own, and starts the statement: locking in id order, it waits at ``later`` before it
has locked ``earlier``, which a third transaction can then lock without waiting.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking import repository
from tests.booking.test_seats import group_service, seat
from tests.factories import Clock, bookable_provider, signed_in

_LOCK = text("SELECT id FROM appointments WHERE id = :id FOR UPDATE")
_LOCK_NOWAIT = text("SELECT id FROM appointments WHERE id = :id FOR UPDATE NOWAIT")
_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = "
    "current_database()"
)


@pytest.fixture(autouse=True)
def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's; SQLite serializes its writers whole")


def _inversion(ordered: list[uuid.UUID]) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(earlier, later): two ids in the statement's order whose ids run against it."""
    for i, earlier in enumerate(ordered):
        for later in ordered[i + 1 :]:
            if later < earlier:
                return earlier, later
    return None


async def _locks_in_id_order(
    app: FastAPI,
    ordered: list[uuid.UUID],
    locking: Callable[[AsyncSession], Awaitable[Any]],
) -> None:
    pair = _inversion(ordered)
    assert pair is not None, "random ids in the statement's own order: run again"
    earlier, later = pair
    engine = app.state.slotwise.db.engine
    async with engine.connect() as holder, engine.connect() as probe:
        await holder.execute(_LOCK, {"id": later})

        async def run() -> None:
            async with app.state.slotwise.db.transaction(writes=True) as session:
                await locking(session)

        statement = asyncio.create_task(run())
        try:
            for _ in range(200):  # until the statement waits for the held row
                if (await probe.execute(_WAITING)).scalar_one() > 0:
                    break
                await probe.rollback()
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the statement never waited for the held row")
            await probe.rollback()
            try:
                await probe.execute(_LOCK_NOWAIT, {"id": earlier})
            except DBAPIError:
                pytest.fail("the statement locked a row of a larger id before the held one")
            await probe.rollback()
        finally:
            await holder.rollback()
            await statement


async def test_a_series_occurrences_are_locked_in_the_order_of_their_ids(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, requires_confirmation=False)
    kim = await signed_in(client)
    made = await client.post(
        "/appointments/series",
        headers=kim.headers,
        json={
            "provider_id": provider["id"],
            "start_datetime": "2027-03-03T10:00:00Z",
            "count": 8,
        },
    )
    assert made.status_code == 201, made.text
    series = made.json()
    series_id = uuid.UUID(series["id"])
    ordered = [uuid.UUID(one["id"]) for one in series["occurrences"]]  # the rule's order

    async def locking(session: AsyncSession) -> None:
        found = await repository.series_occurrences(session, series_id, lock=True)
        # Still answered in the rule's order.
        assert [one.appointment.id for one in found] == ordered

    await _locks_in_id_order(app, ordered, locking)


async def test_a_sessions_seats_are_locked_in_the_order_of_their_ids(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> None:
    _, provider, service_id = await group_service(client, capacity=8)
    for _ in range(8):
        booked = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
        assert booked.status_code == 201, booked.text
    provider_id = uuid.UUID(str(provider["id"]))
    async with app.state.slotwise.db.session(writes=False) as session:
        unlocked = await repository.seats(session, provider_id=provider_id)
    ordered = [one.appointment.id for one in unlocked]  # start, session and seat order
    assert len(ordered) == 8
    session_key = unlocked[0].appointment.session_key

    async def locking(session: AsyncSession) -> None:
        seats = await repository.seats(
            session, provider_id=provider_id, session_key=session_key, lock=True
        )
        # Still answered in seat order.
        assert [one.appointment.id for one in seats] == ordered

    await _locks_in_id_order(app, ordered, locking)
