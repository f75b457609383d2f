"""Both caches follow a change to every kind of row they are computed from
(``availability.sources``): a worker's kept slot listing and its kept booking terms, whether
the change is made by this worker, by another worker on the same database, or by SQL from
outside Slotwise.

Each test keeps both first (a booking reads the terms; a listing is computed and then
answered without a query), makes one change, and asks this worker again: the listing no
longer offers 14:00 (at once for its own change, as soon as the notice or the change log
arrives for another's), and a booking at 14:00 is refused at once, by the right rule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from slotwise.config import Settings
from slotwise.main import create_app
from slotwise.state import get_now
from tests.availability.test_slot_cache import StatementCounter, cache_in_use, eventually
from tests.conftest import make_settings
from tests.external.conftest import CALENDAR_SETTINGS
from tests.external.ics_server import CalendarServer, running_calendar_server
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    signed_in,
    signed_in_admin,
)

DAY = "2027-03-03"  # a Wednesday, two days after BOOKING_NOW
NEW_ID = "0192f0c4-7a59-7c3e-9b5e-2f1d3c4b5a69"


@dataclass
class World:
    """A bookable provider (9:00-17:00 UTC every day, 60-minute sessions) with a service."""

    account: Account
    profile: dict[str, Any]
    service_id: str
    settings: Settings
    calendar: CalendarServer  # serves the provider's connected calendar
    calendar_id: str


Api = Callable[[httpx.AsyncClient, World], Awaitable[None]]


async def _ok(response: httpx.Response) -> None:
    assert response.status_code < 300, response.text


async def _as_admin(
    client: httpx.AsyncClient, world: World, change: dict[str, object]
) -> httpx.Response:
    admin = await signed_in_admin(client, world.settings)
    return await client.patch(f"/users/{world.account.id}", headers=admin.headers, json=change)


async def _profile(client: httpx.AsyncClient, world: World) -> None:
    await _ok(
        await client.put(
            "/providers/me", headers=world.account.headers, json={"accepting_bookings": False}
        )
    )


async def _demoted(client: httpx.AsyncClient, world: World) -> None:
    await _ok(await _as_admin(client, world, {"role": "client"}))


async def _deactivated(client: httpx.AsyncClient, world: World) -> None:
    await _ok(await _as_admin(client, world, {"is_active": False}))


async def _suspended(client: httpx.AsyncClient, world: World) -> None:
    await _ok(await _as_admin(client, world, {"is_blocked": True}))


async def _service(client: httpx.AsyncClient, world: World) -> None:
    await _ok(
        await client.delete(
            f"/providers/me/services/{world.service_id}", headers=world.account.headers
        )
    )


async def _weekly(client: httpx.AsyncClient, world: World) -> None:
    headers = world.account.headers
    patterns = (await client.get("/providers/me/availability", headers=headers)).json()
    wednesday = next(p for p in patterns if p["day_of_week"] == 2)
    await _ok(
        await client.put(
            f"/providers/me/availability/{wednesday['id']}",
            headers=headers,
            json={"end_time": "12:00:00"},
        )
    )


async def _override(client: httpx.AsyncClient, world: World) -> None:
    await _ok(
        await client.post(
            "/providers/me/date-overrides",
            headers=world.account.headers,
            json={"date": DAY, "kind": "unavailable"},
        )
    )


async def _time_off(client: httpx.AsyncClient, world: World) -> None:
    await _ok(
        await client.post(
            "/providers/me/time-off",
            headers=world.account.headers,
            json={"start_date": DAY, "end_date": DAY},
        )
    )


BUSY_AT_14 = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
    b"UID:dentist@example.com\r\nDTSTAMP:20270201T000000Z\r\nDTSTART:20270303T140000Z\r\n"
    b"DTEND:20270303T150000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def _calendar(client: httpx.AsyncClient, world: World) -> None:
    world.calendar.serve("mine.ics", body=BUSY_AT_14)
    await _ok(
        await client.post(
            f"/providers/me/calendars/{world.calendar_id}/sync", headers=world.account.headers
        )
    )


@dataclass(frozen=True)
class Kind:
    """A change to one kind of row: through the API, or as an operator's SQL (``:p`` the
    provider's id, ``:new`` a fresh id); and what a booking at 14:00 then gets."""

    api: Api
    sql: str
    status: int
    code: str
    with_service: bool = False


KINDS = {
    "the profile": Kind(
        _profile,
        "UPDATE providers SET accepting_bookings = false WHERE id = :p",
        409,
        "provider_not_accepting",
    ),
    "the account's role": Kind(
        _demoted,
        "UPDATE users SET role = 'client' WHERE id = (SELECT user_id FROM providers WHERE id = :p)",
        404,
        "provider_not_found",
    ),
    "the account deactivated": Kind(
        _deactivated,
        "UPDATE users SET is_active = false"
        " WHERE id = (SELECT user_id FROM providers WHERE id = :p)",
        404,
        "provider_not_found",
    ),
    "the account suspended": Kind(
        _suspended,
        "UPDATE users SET is_blocked = true"
        " WHERE id = (SELECT user_id FROM providers WHERE id = :p)",
        404,
        "provider_not_found",
    ),
    "a service": Kind(
        _service,
        "UPDATE services SET is_active = false WHERE provider_id = :p",
        404,
        "service_not_found",
        with_service=True,
    ),
    "weekly hours": Kind(
        _weekly,
        "UPDATE weekly_patterns SET is_active = false WHERE provider_id = :p AND day_of_week = 2",
        422,
        "outside_availability",
    ),
    "a date override": Kind(
        _override,
        "INSERT INTO date_overrides (id, provider_id, on_date, kind, ranges, created_at,"
        " updated_at) SELECT :new, id, '2027-03-03', 'unavailable', '[]', created_at,"
        " updated_at FROM providers WHERE id = :p",
        422,
        "outside_availability",
    ),
    "time off": Kind(
        _time_off,
        "INSERT INTO time_off (id, provider_id, start_date, end_date, created_at, updated_at)"
        " SELECT :new, id, '2027-03-03', '2027-03-03', created_at, updated_at FROM providers"
        " WHERE id = :p",
        422,
        "outside_availability",
    ),
    "busy time from a calendar": Kind(
        _calendar,
        "INSERT INTO calendar_busy (id, calendar_id, provider_id, start_at, end_at)"
        " SELECT :new, id, provider_id, '2027-03-03 14:00:00.000000+00:00',"
        " '2027-03-03 15:00:00.000000+00:00' FROM external_calendars WHERE provider_id = :p",
        409,
        "calendar_busy",
    ),
}
WRITERS = ("this worker", "another worker", "SQL from outside")


@pytest.fixture
def settings(database_url: str) -> Settings:
    """With calendar keys, and calls to the loopback calendar server allowed."""
    return make_settings(database_url, **CALENDAR_SETTINGS)


@pytest.fixture
def calendar_server() -> Iterator[CalendarServer]:
    with running_calendar_server() as running:
        yield running


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    yield controlled
    app.dependency_overrides.pop(get_now, None)


@pytest.fixture
async def other_worker(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second application on the same database: another uvicorn worker, as it were."""
    application = create_app(settings)
    application.dependency_overrides[get_now] = lambda: BOOKING_NOW
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as client:
        yield client
    await application.state.slotwise.aclose()


@pytest.fixture
async def world(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    clock: Clock,
    calendar_server: CalendarServer,
) -> World:
    account, profile = await bookable_provider(client, session_duration_minutes=60)
    calendar = await client.post(
        "/providers/me/calendars",
        headers=account.headers,
        json={"kind": "ics_url", "url": calendar_server.serve("mine.ics", body=b"")},
    )
    assert calendar.status_code == 201, calendar.text
    service = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Intro", "duration_minutes": 60},
    )
    assert service.status_code == 201, service.text
    await cache_in_use(app)
    return World(
        account, profile, service.json()["id"], settings, calendar_server, calendar.json()["id"]
    )


def stored_id(engine: AsyncEngine, value: str) -> str:
    """A uuid as the database stores it (SQLite: 32 hex digits)."""
    return value if engine.dialect.name == "postgresql" else value.replace("-", "")


async def offers_14(client: httpx.AsyncClient, world: World, kind: Kind) -> bool:
    params = {"date": DAY}
    if kind.with_service:
        params["service"] = world.service_id
    listed = await client.get(f"/providers/{world.profile['public_handle']}/slots", params=params)
    if listed.status_code == 404:
        return False
    assert listed.status_code == 200, listed.text
    return any(slot["start_at"][11:16] == "14:00" for slot in listed.json()["slots"])


async def book(
    client: httpx.AsyncClient, world: World, kind: Kind, booker: Account, at: str
) -> httpx.Response:
    body: dict[str, object] = {
        "provider_id": world.profile["id"],
        "start_datetime": f"{DAY}T{at}:00Z",
    }
    if kind.with_service:
        body["service_id"] = world.service_id
    return await client.post("/appointments/", headers=booker.headers, json=body)


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("kind_name", list(KINDS))
async def test_both_caches_follow_every_kind_of_change(
    client: httpx.AsyncClient,
    app: FastAPI,
    other_worker: httpx.AsyncClient,
    world: World,
    kind_name: str,
    writer: str,
) -> None:
    kind = KINDS[kind_name]
    booker = await signed_in(client)
    kept = await book(client, world, kind, booker, "10:00")
    assert kept.status_code == 201, kept.text  # the terms are kept now

    async def listing_kept() -> bool:  # once the booking's own notice has come back
        assert await offers_14(client, world, kind)
        statements = StatementCounter(app)
        assert await offers_14(client, world, kind)
        return statements.count == 0

    assert await eventually(listing_kept)

    if writer == "this worker":
        await kind.api(client, world)
    elif writer == "another worker":
        await kind.api(other_worker, world)
    else:
        engine = create_async_engine(world.settings.database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text(kind.sql),
                    {
                        "p": stored_id(engine, world.profile["id"]),
                        "new": stored_id(engine, NEW_ID),
                    },
                )
        finally:
            await engine.dispose()

    refused = await book(client, world, kind, booker, "14:00")  # no waiting: proven in it
    assert (refused.status_code, refused.json().get("code")) == (kind.status, kind.code)
    if writer == "this worker":  # told before the change's answer
        assert not await offers_14(client, world, kind)
    else:
        assert await eventually(lambda: _not(offers_14(client, world, kind)))


async def _not(check: Awaitable[bool]) -> bool:
    return not await check
