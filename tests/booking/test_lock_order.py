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

from slotwise.booking import lifecycle, repository
from slotwise.booking.queue import _answer_of, _Cancel, _Move
from slotwise.booking.schemas import RescheduleRequest
from tests.booking.test_queue import DAY, claims_of, state_of
from tests.booking.test_queue_cancel import booked
from tests.booking.test_seats import group_service, seat
from tests.factories import BOOKING_NOW, Account, Clock, bookable_provider, signed_in

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


async def test_batches_that_cancel_and_move_take_every_lock_first(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches, each cancelling one provider's appointment and moving the other's: each
    takes both providers' locks (and its clients') before it changes anything, so the
    second waits for the first whole rather than each holding the lock the other's move
    waits for (a deadlock: the batch PostgreSQL picks is given up and its jobs written
    alone, a second later)."""
    _, first_provider = await bookable_provider(client)
    _, second_provider = await bookable_provider(client)
    clients = [await signed_in(client) for _ in range(4)]
    cancelled_1 = await booked(client, clients[0], first_provider, "09:00")
    moved_1 = await booked(client, clients[1], second_provider, "10:00")
    cancelled_2 = await booked(client, clients[2], second_provider, "09:00")
    moved_2 = await booked(client, clients[3], first_provider, "10:00")
    real = lifecycle.cancel_each

    async def slow_cancel_each(*given: Any) -> Any:
        answers = await real(*given)
        await asyncio.sleep(0.3)  # the other batch's cancellations run meanwhile, if they can
        return answers

    monkeypatch.setattr(lifecycle, "cancel_each", slow_cancel_each)

    def cancel(account: Account, appointment_id: uuid.UUID) -> Any:
        claims = claims_of(app, account)
        return _Cancel(claims, appointment_id, None, BOOKING_NOW, _answer_of())

    def move(account: Account, appointment_id: uuid.UUID, at: str) -> Any:
        data = RescheduleRequest.model_validate({"new_start_time": f"{DAY}T{at}:00Z"})
        claims = claims_of(app, account)
        return _Move(claims, appointment_id, data, [], BOOKING_NOW, _answer_of())

    batches = [
        [cancel(clients[0], cancelled_1), move(clients[1], moved_1, "14:00")],
        [cancel(clients[2], cancelled_2), move(clients[3], moved_2, "15:00")],
    ]
    writer = state_of(app).bookings
    await asyncio.gather(*(writer._write(batch) for batch in batches))
    jobs = [job for batch in batches for job in batch]
    assert not any(job.alone for job in jobs)  # no batch was given up
    answers = [job.answer.result() for job in jobs]
    assert [answer.status.value for answer in answers] == [
        "cancelled",
        "pending",
        "cancelled",
        "pending",
    ]
