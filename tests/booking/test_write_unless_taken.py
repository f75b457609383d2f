"""create.write_unless_taken: the PostgreSQL booking batch's one statement. It writes each
booking whose time is free, with its history and messages, and skips the rest: a time
taken by the provider or by the client (committed, or earlier in the same statement), a
provider whose rules changed since the check, a blocked client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from slotwise.availability import changes
from slotwise.availability.cache import SlotCache
from slotwise.booking import create, repository
from slotwise.booking.create import Booked
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import read
from slotwise.db import Database
from slotwise.models import Appointment, AppointmentEvent, ClientStanding, OutboxMessage
from slotwise.users.models import User
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    count_rows,
    signed_in,
)

DAY = "2027-03-03"


@pytest.fixture(autouse=True)
def postgresql_only(settings: Any) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the batch's one statement is PostgreSQL's; SQLite writes in a transaction")


def database_of(app: FastAPI) -> Database:
    database: Database = app.state.slotwise.db
    return database


async def booking(
    app: FastAPI, provider: dict[str, Any], account: Account, at: str, **extra: Any
) -> tuple[Booked, int]:
    """A booking checked as the batch checks it, and the rules version it was checked at."""
    data = AppointmentCreate.model_validate(
        {"provider_id": provider["id"], "start_datetime": f"{DAY}T{at}:00Z", **extra}
    )
    async with database_of(app).session(writes=False) as session:
        user = await session.get(User, uuid.UUID(account.id))
        terms = await read(session, provider["id"], now=BOOKING_NOW)
        candidate = await create.prepare(session, terms, user=user, data=data, now=BOOKING_NOW)
    key = create.check_caller(user, data)
    booked = create.new_booking(
        candidate, user=user, data=data, client_key=key, now=BOOKING_NOW, guests=GuestPolicy()
    )
    return booked, terms.version


async def write(app: FastAPI, bookings: list[tuple[Booked, int]]) -> list[str]:
    """Which of the bookings were written: their start times, HH:MM."""
    async with database_of(app).autocommit() as session:
        written = await create.write_unless_taken(session, bookings)
    return [booked.appointment.start_at.strftime("%H:%M") for booked in written]


async def test_free_times_are_written_and_taken_ones_skipped(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    _, other = await bookable_provider(client)
    holder, first, second = [await signed_in(client) for _ in range(3)]
    assert await write(app, [await booking(app, provider, holder, "10:00")]) == ["10:00"]
    batch = [
        await booking(app, provider, first, "10:00"),  # the provider's time: the holder's
        await booking(app, other, holder, "10:00"),  # the holder's own time, elsewhere
        await booking(app, provider, first, "11:00"),  # back to back with the holder: free
        await booking(app, provider, second, "11:00"),  # taken just before, same statement
        await booking(app, other, first, "11:00"),  # the first client's, just before
        await booking(app, other, second, "12:00"),
    ]
    assert await write(app, batch) == ["11:00", "12:00"]
    # What was written is whole; what was skipped left nothing behind.
    for booked, _ in batch:
        appointment_id = booked.appointment.id
        written = await count_rows(app, Appointment, id=appointment_id)
        assert await count_rows(app, AppointmentEvent, appointment_id=appointment_id) == written
        messages = await count_rows(app, OutboxMessage, appointment_id=appointment_id)
        assert (messages >= 2) if written else (messages == 0)
    assert await count_rows(app, Appointment) == 3


async def test_changed_rules_and_blocked_clients_are_skipped(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, provider = await bookable_provider(client)
    _, other = await bookable_provider(client)
    booker, blocked = await signed_in(client), await signed_in(client)
    stale = await booking(app, provider, booker, "10:00")
    refused = await booking(app, other, blocked, "10:00")
    kept = await booking(app, other, booker, "11:00")
    changed = await client.patch("/providers/me", headers=owner.headers, json={"bio": "New"})
    assert changed.status_code == 200, changed.text
    async with database_of(app).transaction(writes=True) as session:
        session.add(ClientStanding(email=blocked.email, no_show_count=3, blocked=True))
    assert await write(app, [stale, refused, kept]) == ["11:00"]
    assert await count_rows(app, Appointment) == 1


async def test_a_booking_checked_at_another_version_is_skipped(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    booked, version = await booking(app, provider, await signed_in(client), "10:00")
    assert await write(app, [(booked, version + 1)]) == []  # not the version it is at


async def test_a_refusal_of_the_whole_statement_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)
    good = await booking(app, provider, first, "10:00")
    bad, version = await booking(app, provider, second, "11:00")
    bad.appointment.client_id = uuid.uuid4()  # no such user: a foreign key refuses it
    with pytest.raises(DBAPIError):
        await write(app, [good, (bad, version)])
    assert await count_rows(app, Appointment) == 0
    assert await count_rows(app, AppointmentEvent) == 0
    assert await count_rows(app, OutboxMessage) == 0


async def test_the_statement_takes_the_bookings_locks_before_writing(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The locks every booking transaction takes (``repository.lock_bookings``) order
    concurrent writers of one provider or client, so that crossed inserts queue rather than
    deadlock: the statement waits for a transaction holding its provider's lock."""
    _, provider = await bookable_provider(client)
    waiting = await booking(app, provider, await signed_in(client), "10:00")
    async with database_of(app).transaction(writes=True) as holder:
        await repository.lock_bookings(holder, [(uuid.UUID(provider["id"]), "x@example.com")])
        pending = asyncio.ensure_future(write(app, [waiting]))
        await asyncio.sleep(0.5)
        assert not pending.done()  # waiting for the lock
        assert await count_rows(app, Appointment) == 0
    assert await pending == ["10:00"]  # then written, once the holder committed


class Heard(SlotCache):
    def __init__(self) -> None:
        super().__init__(max_bytes=1_000_000)
        self.heard: set[uuid.UUID] = set()

    def changed(self, ids: Iterable[uuid.UUID]) -> None:
        self.heard.update(ids)
        super().changed(ids)


async def test_this_workers_slot_cache_hears_of_the_bookings_written(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, settings: Any
) -> None:
    """At the session's commit, before the answer (not only through the database's
    notification, a moment later); of the providers whose bookings were written only."""
    _, provider = await bookable_provider(client)
    _, other = await bookable_provider(client)
    holder, second = await signed_in(client), await signed_in(client)
    assert await write(app, [await booking(app, other, holder, "10:00")]) == ["10:00"]
    batch = [
        await booking(app, provider, holder, "11:00"),
        await booking(app, other, second, "10:00"),  # taken: skipped
    ]
    cache = Heard()  # a cache of its own, which no database notification reaches
    database = Database(settings.database_url, session_info={changes.CACHE_KEY: cache})
    try:
        async with database.autocommit() as session:
            written = await create.write_unless_taken(session, batch)
            assert cache.heard == set()  # not before the commit
    finally:
        await database.dispose()
    assert [booked.appointment.provider_id for booked in written] == [uuid.UUID(provider["id"])]
    assert cache.heard == {uuid.UUID(provider["id"])}
