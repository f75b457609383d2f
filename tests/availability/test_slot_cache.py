"""The slot cache: repeated listings cost no query, and no change they depend on is missed,
whether this worker, another worker or a tool outside Slotwise made it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from slotwise.availability.cache import SlotCache
from slotwise.config import Settings
from slotwise.main import create_app
from slotwise.providers.models import Provider
from slotwise.state import get_now
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    signed_in,
    signed_in_admin,
)

DAY = "2027-03-03"  # a Wednesday, two days after BOOKING_NOW
HOURS = [f"{hour:02d}:00" for hour in range(9, 17)]


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    yield controlled
    app.dependency_overrides.pop(get_now, None)


async def cache_in_use(app: FastAPI) -> SlotCache:
    """The app's slot cache once it may be used (on PostgreSQL: once its listener listens)."""
    listings = app.state.slotwise.slots
    for _ in range(250):
        if listings.watch.ready():
            cache: SlotCache = listings.cache
            return cache
        await asyncio.sleep(0.02)
    raise AssertionError("the slot cache never came into use")


class StatementCounter:
    def __init__(self, app: FastAPI) -> None:
        self.count = 0
        engine = app.state.slotwise.db.engine.sync_engine

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_args: Any) -> None:
            self.count += 1


async def hours(client: httpx.AsyncClient, handle: object, on: str = DAY) -> list[str]:
    response = await client.get(f"/providers/{handle}/slots", params={"date": on})
    assert response.status_code == 200, response.text
    return [slot["start_at"][11:16] for slot in response.json()["slots"]]


@pytest.fixture
async def provider(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> tuple[Account, dict[str, Any]]:
    account, profile = await bookable_provider(client, session_duration_minutes=60)
    await cache_in_use(app)
    return account, profile


async def test_a_repeated_listing_runs_no_query(
    client: httpx.AsyncClient, app: FastAPI, provider: tuple[Account, dict[str, Any]]
) -> None:
    _account, profile = provider
    statements = StatementCounter(app)
    first = await client.get(f"/providers/{profile['public_handle']}/slots", params={"date": DAY})
    queried = statements.count
    again = await client.get(f"/providers/{profile['public_handle']}/slots", params={"date": DAY})
    assert queried > 0
    assert statements.count == queried  # the second answer came from the cache
    assert again.content == first.content
    by_id = await client.get(f"/providers/{profile['id']}/slots", params={"date": DAY})
    assert by_id.json() == first.json()  # another key for the same listing, same answer


async def test_a_burst_for_an_uncached_listing_computes_it_once(
    client: httpx.AsyncClient, app: FastAPI, provider: tuple[Account, dict[str, Any]]
) -> None:
    _account, profile = provider
    path = f"/providers/{profile['public_handle']}/slots"
    await client.get(path, params={"date": "2027-03-05"})  # the schedule kept
    statements = StatementCounter(app)
    await client.get(path, params={"date": "2027-03-04"})
    one_computation = statements.count
    burst = await asyncio.gather(*(client.get(path, params={"date": DAY}) for _ in range(10)))
    assert {response.status_code for response in burst} == {200}
    assert len({response.content for response in burst}) == 1
    assert statements.count == 2 * one_computation


async def test_the_clock_cuts_a_cached_listing(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock, provider: tuple[Account, Any]
) -> None:
    account, profile = provider
    await client.put("/providers/me", headers=account.headers, json={"min_notice_minutes": 90})
    handle = profile["public_handle"]

    async def served_from_the_cache() -> bool:
        # On PostgreSQL the change's notification arrives asynchronously and may void the
        # first listing cached after it: wait until a listing stays cached.
        counter = StatementCounter(app)
        assert await hours(client, handle) == HOURS
        return counter.count == 0

    assert await eventually(served_from_the_cache)
    statements = StatementCounter(app)
    clock.now = BOOKING_NOW.replace(day=3, hour=10, minute=31)  # 10:31 + 90 min: 12:01
    assert await hours(client, handle) == HOURS[4:]
    clock.now = BOOKING_NOW.replace(day=3, hour=10, minute=30)  # notice ends at 12:00 exactly
    assert await hours(client, handle) == HOURS[3:]
    assert statements.count == 0


async def _add_hours(client: httpx.AsyncClient, account: Account, profile: Any) -> None:
    await client.post(
        "/providers/me/date-overrides",
        headers=account.headers,
        json={
            "date": DAY,
            "kind": "add",
            "ranges": [{"start_time": "18:00:00", "end_time": "19:00:00"}],
        },
    )


async def _change_pattern(client: httpx.AsyncClient, account: Account, profile: Any) -> None:
    patterns = (await client.get("/providers/me/availability", headers=account.headers)).json()
    wednesday = next(p for p in patterns if p["day_of_week"] == 2)
    await client.put(
        f"/providers/me/availability/{wednesday['id']}",
        headers=account.headers,
        json={"end_time": "12:00:00"},
    )


async def _delete_pattern(client: httpx.AsyncClient, account: Account, profile: Any) -> None:
    patterns = (await client.get("/providers/me/availability", headers=account.headers)).json()
    wednesday = next(p for p in patterns if p["day_of_week"] == 2)
    await client.delete(f"/providers/me/availability/{wednesday['id']}", headers=account.headers)


async def _day_off(client: httpx.AsyncClient, account: Account, profile: Any) -> None:
    await client.post(
        "/providers/me/date-overrides",
        headers=account.headers,
        json={"date": DAY, "kind": "unavailable"},
    )


async def _time_off(client: httpx.AsyncClient, account: Account, profile: Any) -> None:
    await client.post(
        "/providers/me/time-off",
        headers=account.headers,
        json={"start_date": DAY, "end_date": DAY},
    )


async def _book(
    client: httpx.AsyncClient, account: Account, profile: Any, at: str = "10:00"
) -> None:
    booker = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["id"], "start_datetime": f"{DAY}T{at}:00Z"},
    )
    assert booked.status_code == 201, booked.text


async def _longer_sessions(client: httpx.AsyncClient, account: Account, profile: Any) -> None:
    await client.put(
        "/providers/me", headers=account.headers, json={"session_duration_minutes": 120}
    )


async def _stop_accepting(client: httpx.AsyncClient, account: Account, profile: Any) -> None:
    await client.put("/providers/me", headers=account.headers, json={"accepting_bookings": False})


async def _move_zone(client: httpx.AsyncClient, account: Account, profile: Any) -> None:
    await client.put("/providers/me", headers=account.headers, json={"timezone": "Asia/Kolkata"})


CHANGES: dict[str, tuple[Callable[..., Awaitable[None]], list[str]]] = {
    "extra hours": (_add_hours, [*HOURS, "18:00"]),
    "shorter weekly hours": (_change_pattern, HOURS[:3]),
    "weekly hours deleted": (_delete_pattern, []),
    "a day off": (_day_off, []),
    "time off": (_time_off, []),
    "a booking": (_book, [h for h in HOURS if h != "10:00"]),
    "a longer session": (_longer_sessions, HOURS[::2][:4]),
    "not accepting bookings": (_stop_accepting, []),
    "another time zone": (_move_zone, HOURS),  # same wall hours, other offsets
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_the_next_listing_shows_every_change(
    client: httpx.AsyncClient, provider: tuple[Account, Any], change: str
) -> None:
    account, profile = provider
    make_change, expected = CHANGES[change]
    before = await client.get(f"/providers/{profile['public_handle']}/slots", params={"date": DAY})
    assert [s["start_at"][11:16] for s in before.json()["slots"]] == HOURS
    await make_change(client, account, profile)
    after = await client.get(f"/providers/{profile['public_handle']}/slots", params={"date": DAY})
    assert [s["start_at"][11:16] for s in after.json()["slots"]] == expected
    assert after.content != before.content


async def test_a_cancellation_frees_the_slot_again(
    client: httpx.AsyncClient, provider: tuple[Account, Any]
) -> None:
    _account, profile = provider
    booker = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["id"], "start_datetime": f"{DAY}T10:00:00Z"},
    )
    assert "10:00" not in await hours(client, profile["public_handle"])
    cancelled = await client.post(
        f"/appointments/{booked.json()['id']}/cancel", headers=booker.headers, json={}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert await hours(client, profile["public_handle"]) == HOURS


async def test_a_suspended_provider_disappears_at_once(
    client: httpx.AsyncClient, settings: Settings, provider: tuple[Account, Any]
) -> None:
    account, profile = provider
    assert await hours(client, profile["public_handle"]) == HOURS
    admin = await signed_in_admin(client, settings)
    await client.patch(f"/users/{account.id}", headers=admin.headers, json={"is_blocked": True})
    gone = await client.get(f"/providers/{profile['public_handle']}/slots", params={"date": DAY})
    assert gone.status_code == 404


async def test_a_deactivated_service_is_no_longer_listed(
    client: httpx.AsyncClient, provider: tuple[Account, Any]
) -> None:
    account, profile = provider
    created = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Intro", "duration_minutes": 30},
    )
    service_id = created.json()["id"]
    path = f"/providers/{profile['public_handle']}/slots"
    listed = await client.get(path, params={"date": DAY, "service": service_id})
    assert listed.status_code == 200
    await client.delete(f"/providers/me/services/{service_id}", headers=account.headers)
    gone = await client.get(path, params={"date": DAY, "service": service_id})
    assert gone.status_code == 404


@pytest.fixture
async def other_worker(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second application on the same database: another uvicorn worker, as it were."""
    application = create_app(settings)
    application.dependency_overrides[get_now] = lambda: BOOKING_NOW
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as client:
        yield client
    await application.state.slotwise.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 3.0) -> bool:
    """PostgreSQL tells other workers as soon as the change commits, but asynchronously."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_another_workers_booking_reaches_this_workers_cache(
    client: httpx.AsyncClient,
    other_worker: httpx.AsyncClient,
    provider: tuple[Account, Any],
) -> None:
    _account, profile = provider
    handle = profile["public_handle"]
    assert await hours(client, handle) == HOURS  # cached here
    booker = await signed_in(other_worker)
    booked = await other_worker.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["id"], "start_datetime": f"{DAY}T11:00:00Z"},
    )
    assert booked.status_code == 201, booked.text

    async def seen() -> bool:
        return "11:00" not in await hours(client, handle)

    assert await eventually(seen)


async def test_a_change_made_outside_slotwise_reaches_the_cache(
    client: httpx.AsyncClient, settings: Settings, provider: tuple[Account, Any]
) -> None:
    """Triggers (PostgreSQL) and the file's data version (SQLite) see any writer, e.g. an
    operator's SQL."""
    _account, profile = provider
    handle = profile["public_handle"]
    assert await hours(client, handle) == HOURS
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE providers SET session_duration_minutes = 240 WHERE public_handle = :h"
                ),
                {"h": handle},
            )
    finally:
        await engine.dispose()

    async def seen() -> bool:
        return await hours(client, handle) == ["09:00", "13:00"]

    assert await eventually(seen)


async def test_a_lost_listener_disables_the_cache_until_it_listens_again(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, provider: tuple[Account, Any]
) -> None:
    if app.state.slotwise.db.is_sqlite:
        pytest.skip("PostgreSQL's listener; SQLite has no connection to lose")
    _account, profile = provider
    handle = profile["public_handle"]
    cache = await cache_in_use(app)
    assert await hours(client, handle) == HOURS
    listener = app.state.slotwise.slots.watch
    dsn, listener.dsn = listener.dsn, "postgresql://postgres@127.0.0.1:1/nowhere"  # no way back
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            ended = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database()"
                    " AND application_name = 'slotwise-slot-cache'"
                )
            )
        assert ended == 1
        assert await eventually(lambda: _is(cache.enabled, False))
        # Changed while nobody listens: the cache is off, so the listing still shows it.
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE providers SET session_duration_minutes = 240 WHERE public_handle = :h"
                ),
                {"h": handle},
            )
        assert await hours(client, handle) == ["09:00", "13:00"]
        listener.dsn = dsn  # the database is back: it listens again, with an empty cache
        assert await eventually(lambda: _is(cache.enabled, True), seconds=10)
        assert await hours(client, handle) == ["09:00", "13:00"]
    finally:
        await engine.dispose()


async def _is(value: object, expected: object) -> bool:
    return value is expected


class SilentProxy:
    """A TCP relay to PostgreSQL that can start swallowing everything without closing: a
    database host gone, or a NAT entry dropped, as the listener's connection sees it."""

    def __init__(self) -> None:
        self.silent = False
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.silent:
                writer.write(data)
                await writer.drain()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 5432)
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )

    def close(self) -> None:
        self.server.close()


async def _outside_sql(settings: Settings, sql: str, **params: object) -> None:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(sql), params)
    finally:
        await engine.dispose()


def _postgres_listener(app: FastAPI) -> Any:
    if app.state.slotwise.db.is_sqlite:
        pytest.skip("PostgreSQL's listener")
    listener = app.state.slotwise.slots.watch
    listener.heartbeat_seconds, listener.heartbeat_timeout_seconds = 0.2, 0.5
    return listener


async def test_a_listener_that_stops_hearing_turns_the_cache_off(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, clock: Clock
) -> None:
    listener = _postgres_listener(app)
    if "127.0.0.1:5432" not in listener.dsn:
        pytest.skip("the relay expects PostgreSQL on 127.0.0.1:5432")
    proxy = SilentProxy()
    await proxy.start()
    listener.dsn = listener.dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    try:
        _account, profile = await bookable_provider(client, session_duration_minutes=60)
        cache = await cache_in_use(app)
        handle = profile["public_handle"]
        assert await hours(client, handle) == HOURS
        proxy.silent = True  # no FIN, no RST: only the heartbeat can tell
        await _outside_sql(
            settings,
            "UPDATE providers SET session_duration_minutes = 240 WHERE public_handle = :h",
            h=handle,
        )
        assert await eventually(lambda: _is(cache.enabled, False))
        assert await hours(client, handle) == ["09:00", "13:00"]
    finally:
        proxy.close()


async def test_disabled_triggers_turn_the_cache_off_until_they_are_back(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, provider: tuple[Account, Any]
) -> None:
    listener = _postgres_listener(app)
    _account, profile = provider
    cache = listener.cache
    handle = profile["public_handle"]
    assert await hours(client, handle) == HOURS
    await _outside_sql(settings, "ALTER TABLE providers DISABLE TRIGGER providers_schedule_changed")
    assert await eventually(lambda: _is(cache.enabled, False))
    await _outside_sql(
        settings,
        "UPDATE providers SET session_duration_minutes = 240 WHERE public_handle = :h",
        h=handle,
    )
    assert await hours(client, handle) == ["09:00", "13:00"]  # unannounced, yet seen
    await _outside_sql(settings, "ALTER TABLE providers ENABLE TRIGGER providers_schedule_changed")
    assert await eventually(lambda: _is(cache.enabled, True))
    assert await hours(client, handle) == ["09:00", "13:00"]


async def test_a_truncate_empties_every_workers_cache(
    client: httpx.AsyncClient, settings: Settings, provider: tuple[Account, Any]
) -> None:
    _account, profile = provider
    handle = profile["public_handle"]
    booker = await signed_in(client)
    await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["id"], "start_datetime": f"{DAY}T10:00:00Z"},
    )
    assert "10:00" not in await hours(client, handle)
    await _outside_sql(settings, "DELETE FROM appointment_events")
    if settings.database_url.startswith("postgresql"):
        await _outside_sql(settings, "TRUNCATE appointments CASCADE")
    else:
        await _outside_sql(settings, "DELETE FROM appointments")

    async def freed() -> bool:
        return await hours(client, handle) == HOURS

    assert await eventually(freed)


async def test_a_released_savepoint_is_not_yet_a_commit(
    app: FastAPI, provider: tuple[Account, Any]
) -> None:
    _account, profile = provider
    database = app.state.slotwise.db
    cache: SlotCache = app.state.slotwise.slots.cache
    async with database.session(writes=True) as session:
        marked_before = cache.mark()
        async with session.begin_nested():
            row = await session.get(Provider, uuid.UUID(str(profile["id"])))
            assert row is not None
            row.bio = "Changed inside a savepoint"
        assert cache.mark() == marked_before  # released: nothing is committed yet
        await session.commit()
    assert cache.mark() > marked_before


async def test_a_commit_that_changes_no_schedule_keeps_the_cache(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, provider: tuple[Account, Any]
) -> None:
    _account, profile = provider
    handle = profile["public_handle"]
    assert await hours(client, handle) == HOURS
    await signed_in(client)  # a registration and a login: users and tokens written
    await hours(client, handle)  # whatever that invalidated, it is computed again here
    statements = StatementCounter(app)
    await _outside_sql(
        settings,
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ('x', '2030-01-01')",
    )  # another process's commit that touches no schedule
    assert await hours(client, handle) == HOURS
    assert statements.count == 0


async def test_a_worker_left_behind_by_the_log_forgets_everything(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, provider: tuple[Account, Any]
) -> None:
    if not app.state.slotwise.db.is_sqlite:
        pytest.skip("SQLite's change log")
    _account, profile = provider
    handle = profile["public_handle"]
    assert await hours(client, handle) == HOURS
    statements = StatementCounter(app)
    await _outside_sql(  # more changes than the log keeps, none of them this provider's
        settings,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10050)"
        " INSERT INTO schedule_changes (ref) SELECT '00000000000000000000000000000000' FROM n",
    )
    assert await hours(client, handle) == HOURS
    assert statements.count > 0  # computed again: what was missed is unknown


async def test_this_workers_booking_reaches_its_cache_before_the_answer(
    client: httpx.AsyncClient, app: FastAPI, provider: tuple[Account, Any]
) -> None:
    """Bookings are written with Core statements, not the ORM's flush: they give their
    change to the kept listings themselves, without waiting for a notification or the
    change log, and the listing applies it without a query."""
    account, profile = provider
    cache = await cache_in_use(app)
    handle = profile["public_handle"]
    assert await hours(client, handle) == HOURS
    before = cache.mark()
    await _book(client, account, profile, at="13:00")  # asserts the 201
    assert cache._moved_at.get(uuid.UUID(profile["id"]), 0) > before
    statements = StatementCounter(app)
    assert await hours(client, handle) == [hour for hour in HOURS if hour != "13:00"]
    assert statements.count == 0
