"""Listings computed afresh read one statement: the provider's schedule (profile, account,
services, hours) is kept by the worker and proven current by the rules version read with
the busy time (``availability.schedules``). With the slot cache off, so that every listing
is computed: a booking leaves the schedule kept, and a change to any row of it, even by SQL
from outside Slotwise, is seen by the very next listing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import await_

from slotwise.availability.busy import Busy, BusyReader
from slotwise.config import Settings
from slotwise.db.sqlite import OneTripConnection
from slotwise.main import create_app
from slotwise.state import get_now
from tests.availability.test_caches_follow import (
    DAY,
    KINDS,
    NEW_ID,
    World,
    book,
    offers_14,
    stored_id,
)
from tests.conftest import make_settings
from tests.external.conftest import CALENDAR_SETTINGS
from tests.external.ics_server import CalendarServer, running_calendar_server
from tests.factories import BOOKING_NOW, bookable_provider, signed_in


@pytest.fixture
def cold_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"slot_cache_mb": 0})


@pytest.fixture
async def cold_app(cold_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(cold_settings)
    application.dependency_overrides[get_now] = lambda: BOOKING_NOW
    yield application
    await application.state.slotwise.aclose()


@pytest.fixture
async def cold(cold_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cold_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as client:
        yield client


@pytest.fixture
def settings(database_url: str) -> Settings:
    """With calendar keys, and calls to the loopback calendar server allowed (the kinds of
    change include a connected calendar's busy time)."""
    return make_settings(database_url, **CALENDAR_SETTINGS)


@pytest.fixture
def calendar_server() -> Iterator[CalendarServer]:
    with running_calendar_server() as running:
        yield running


@pytest.fixture
async def world(
    cold: httpx.AsyncClient, cold_settings: Settings, calendar_server: CalendarServer
) -> World:
    account, profile = await bookable_provider(cold, session_duration_minutes=60)
    calendar = await cold.post(
        "/providers/me/calendars",
        headers=account.headers,
        json={"kind": "ics_url", "url": calendar_server.serve("mine.ics", body=b"")},
    )
    assert calendar.status_code == 201, calendar.text
    service = await cold.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Intro", "duration_minutes": 60},
    )
    assert service.status_code == 201, service.text
    return World(
        account,
        profile,
        service.json()["id"],
        cold_settings,
        calendar_server,
        calendar.json()["id"],
    )


class Selects:
    """The SELECT statements the app runs meanwhile."""

    def __init__(self, app: FastAPI) -> None:
        self.statements: list[str] = []
        self.engine = app.state.slotwise.db.engine.sync_engine
        event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.statements.append(statement)

    def __enter__(self) -> list[str]:
        return self.statements

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def hours(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [slot["start_at"][11:16] for slot in response.json()["slots"]]


def replaced(reader: BusyReader, read: Callable[..., Busy]) -> BusyReader:
    """``reader`` with its read replaced."""
    return cast(BusyReader, SimpleNamespace(read=read, taken=reader.taken))


async def test_a_listing_from_a_kept_schedule_is_one_statement(
    cold: httpx.AsyncClient, cold_app: FastAPI, world: World
) -> None:
    path = f"/providers/{world.profile['public_handle']}/slots"
    first = await cold.get(path, params={"date": DAY})  # reads the schedule and keeps it
    with Selects(cold_app) as selects:
        again = await cold.get(path, params={"date": DAY})
        other_day = await cold.get(path, params={"date": "2027-03-04"})
    assert again.content == first.content
    assert hours(other_day) == hours(first)  # the same weekly hours
    assert len(selects) == 2  # one statement each: the busy time and the rules version


async def test_a_booking_leaves_the_schedule_kept(
    cold: httpx.AsyncClient, cold_app: FastAPI, world: World
) -> None:
    path = f"/providers/{world.profile['public_handle']}/slots"
    assert "10:00" in hours(await cold.get(path, params={"date": DAY}))
    booker = await signed_in(cold)
    booked = await book(cold, world, KINDS["the profile"], booker, "10:00")
    assert booked.status_code == 201, booked.text
    with Selects(cold_app) as selects:
        after = hours(await cold.get(path, params={"date": DAY}))
    assert "10:00" not in after
    assert "11:00" in after
    assert len(selects) == 1


def checked_out(app: FastAPI) -> int:
    """Connections of the app's pool in use."""
    pool = app.state.slotwise.db.engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


async def test_a_listing_whose_read_fails_hands_its_connection_back(
    cold: httpx.AsyncClient, cold_app: FastAPI, world: World
) -> None:
    """The busy time of a kept schedule is read on a connection checked out and returned
    within one greenlet (``slots._on_own_connection``): an error still returns it."""
    path = f"/providers/{world.profile['public_handle']}/slots"
    assert hours(await cold.get(path, params={"date": DAY}))  # the schedule is kept
    listings = cold_app.state.slotwise.slots
    read = listings.busy.read

    def failing(connection: Connection, *args: Any, **kwargs: Any) -> Busy:
        read(connection, *args, **kwargs)  # the statement runs, then the reader fails
        raise RuntimeError("the read failed")

    reader = listings.busy
    listings.busy = replaced(reader, failing)
    failed = await cold.get(path, params={"date": DAY})
    assert failed.status_code == 500
    assert checked_out(cold_app) == 0
    listings.busy = reader
    assert hours(await cold.get(path, params={"date": DAY}))


async def test_a_listing_reads_outside_any_transaction(
    cold: httpx.AsyncClient, cold_app: FastAPI, world: World
) -> None:
    """No BEGIN and ROLLBACK round trips around a kept schedule's one statement (on SQLite,
    trips to aiosqlite's thread)."""
    path = f"/providers/{world.profile['public_handle']}/slots"
    assert hours(await cold.get(path, params={"date": DAY}))  # the schedule is kept
    listings = cold_app.state.slotwise.slots
    read = listings.busy.read
    in_transaction: list[bool] = []

    def watched(connection: Connection, *args: Any, **kwargs: Any) -> Busy:
        busy = read(connection, *args, **kwargs)
        adapted = connection.connection.dbapi_connection
        if isinstance(adapted, OneTripConnection):  # SQLite: no BEGIN sent, or to send
            in_transaction.append(adapted.in_transaction or adapted.pending_begin is not None)
        else:
            driver = connection.connection.driver_connection
            assert driver is not None
            in_transaction.append(driver.is_in_transaction())
        return busy

    reader = listings.busy
    listings.busy = replaced(reader, watched)
    assert hours(await cold.get(path, params={"date": DAY}))
    assert in_transaction == [False]


async def test_a_cancelled_listing_hands_its_connection_back(
    cold: httpx.AsyncClient, cold_app: FastAPI, world: World
) -> None:
    path = f"/providers/{world.profile['public_handle']}/slots"
    assert hours(await cold.get(path, params={"date": DAY}))  # the schedule is kept
    listings = cold_app.state.slotwise.slots
    read = listings.busy.read
    reading, never = asyncio.Event(), asyncio.Event()

    def stalled(connection: Connection, *args: Any, **kwargs: Any) -> Busy:
        busy = read(connection, *args, **kwargs)
        reading.set()
        await_(never.wait())  # as if the database had not answered yet
        return busy

    reader = listings.busy
    listings.busy = replaced(reader, stalled)
    listing = asyncio.create_task(cold.get(path, params={"date": DAY}))
    await reading.wait()
    assert checked_out(cold_app) == 1
    listing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listing
    assert checked_out(cold_app) == 0
    listings.busy = reader
    assert hours(await cold.get(path, params={"date": DAY}))


@pytest.mark.parametrize("kind_name", list(KINDS))
async def test_a_kept_schedule_follows_every_kind_of_change_at_once(
    cold: httpx.AsyncClient, world: World, kind_name: str
) -> None:
    kind = KINDS[kind_name]
    assert await offers_14(cold, world, kind)
    assert await offers_14(cold, world, kind)  # from the kept schedule
    engine = create_async_engine(world.settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(kind.sql),
                {"p": stored_id(engine, world.profile["id"]), "new": stored_id(engine, NEW_ID)},
            )
    finally:
        await engine.dispose()
    assert not await offers_14(cold, world, kind)  # no waiting: proven by the listing's read
