"""Ending sessions at once: a password change ends every other session, refresh-token reuse
ends its session, logout ends its own — access tokens included, at the next request, with
the denylist in the database and in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.conftest import app_for, closed, make_settings, redis_or_skip
from tests.factories import PASSWORD, Account, bookable_provider, login, signed_in

NEW_PASSWORD = "another-long-passphrase-42"


@pytest.fixture(params=["database", "redis"])
async def app(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[FastAPI]:
    """The application with its denylist in the database, or in Redis."""
    redis_url = None
    if request.param == "redis":
        redis_url = await redis_or_skip()
    # Rate limits off: in Redis, their counts outlive the test.
    settings = make_settings(database_url, redis_url=redis_url, rate_limit_enabled=False)
    application = app_for(settings)
    yield application
    await closed(application)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _works(client: httpx.AsyncClient, token: str) -> bool:
    response = await client.get("/users/me", headers=_bearer(token))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def _in_two_days(hour: int) -> str:
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


async def _books(client: httpx.AsyncClient, token: str, provider_id: object, start: str) -> int:
    """A booking with the token, through the booking writer."""
    body = {"provider_id": provider_id, "start_datetime": start}
    response = await client.post("/appointments/", headers=_bearer(token), json=body)
    return response.status_code


async def test_password_change_ends_other_sessions_access_tokens_at_once(
    client: httpx.AsyncClient,
) -> None:
    account = await signed_in(client)
    other = await login(client, account.email)
    third = await login(client, account.email)
    # The other sessions' tokens were verified (and kept by the worker) before the change.
    assert await _works(client, other["access_token"])
    assert await _works(client, third["access_token"])
    changed = await client.patch(
        "/users/me",
        headers=account.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    assert not await _works(client, other["access_token"])
    assert not await _works(client, third["access_token"])
    gone = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert gone.status_code == 401
    # The session that made the change goes on, with its tokens as they are.
    assert await _works(client, account.access_token)
    kept = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert kept.status_code == 200
    assert await _works(client, kept.json()["access_token"])
    # A session started after the change is not touched.
    fresh = await login(client, account.email, NEW_PASSWORD)
    assert await _works(client, fresh["access_token"])


async def test_password_change_ends_other_sessions_on_the_booking_route(
    client: httpx.AsyncClient,
) -> None:
    _, provider = await bookable_provider(client, hours=("00:00:00", "23:59:00"))
    account = await signed_in(client)
    other = await login(client, account.email)
    start = _in_two_days(10)
    assert await _books(client, other["access_token"], provider["id"], start) == 201
    await client.patch(
        "/users/me",
        headers=account.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    later = _in_two_days(12)
    assert await _books(client, other["access_token"], provider["id"], later) == 401
    assert await _books(client, account.access_token, provider["id"], later) == 201


async def test_refresh_token_reuse_ends_every_access_token_of_the_session(
    client: httpx.AsyncClient,
) -> None:
    victim = await signed_in(client)
    other = await login(client, victim.email)
    # The thief refreshes with a stolen token first; the victim's client then uses it again.
    thief = await client.post("/auth/refresh", json={"refresh_token": victim.refresh_token})
    assert thief.status_code == 200
    thief_access = thief.json()["access_token"]
    assert await _works(client, thief_access)
    assert await _works(client, victim.access_token)
    reuse = await client.post("/auth/refresh", json={"refresh_token": victim.refresh_token})
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "refresh_token_reused"
    assert not await _works(client, thief_access)
    assert not await _works(client, victim.access_token)
    thief_refresh = thief.json()["refresh_token"]
    again = await client.post("/auth/refresh", json={"refresh_token": thief_refresh})
    assert again.status_code == 401
    # Another session of the same account is not the stolen one.
    assert await _works(client, other["access_token"])


async def test_refresh_token_reuse_ends_the_session_on_the_booking_route(
    client: httpx.AsyncClient,
) -> None:
    _, provider = await bookable_provider(client, hours=("00:00:00", "23:59:00"))
    victim = await signed_in(client)
    thief = await client.post("/auth/refresh", json={"refresh_token": victim.refresh_token})
    thief_access = thief.json()["access_token"]
    assert await _books(client, thief_access, provider["id"], _in_two_days(10)) == 201
    await client.post("/auth/refresh", json={"refresh_token": victim.refresh_token})
    assert await _books(client, thief_access, provider["id"], _in_two_days(12)) == 401


async def test_logout_ends_the_access_tokens_issued_before_a_refresh(
    client: httpx.AsyncClient,
) -> None:
    account: Account = await signed_in(client)
    refreshed = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    newest = refreshed.json()["access_token"]
    assert await _works(client, account.access_token)
    out = await client.post("/auth/logout", headers=_bearer(newest))
    assert out.status_code == 204
    assert not await _works(client, newest)
    assert not await _works(client, account.access_token)


async def test_a_refresh_in_flight_when_its_session_ends_issues_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A refresh that read its token before the session ended (here: a password change in
    another transaction, committed while the refresh waits on its row) issues no tokens."""
    settings = app.state.slotwise.settings
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("on SQLite a refresh reads and spends under the write lock: no meanwhile")
    account = await signed_in(client)
    other = await login(client, account.email)
    outside = create_async_engine(settings.database_url)
    try:
        async with outside.connect() as ending:
            # The other session's tokens revoked, as the password change does, not yet committed.
            await ending.execute(
                text(
                    "UPDATE refresh_tokens SET revoked_at = now()"
                    " WHERE user_id = :user AND revoked_at IS NULL"
                ),
                {"user": account.id},
            )
            body = {"refresh_token": other["refresh_token"]}
            refreshing = asyncio.create_task(client.post("/auth/refresh", json=body))
            await _until_waiting_on_a_lock(outside)
            await ending.commit()
        response = await refreshing
    finally:
        await outside.dispose()
    assert response.status_code == 401, response.text


async def _until_waiting_on_a_lock(engine: AsyncEngine) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(250):
        async with engine.connect() as connection:
            if await connection.scalar(query):
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the refresh never waited on the token's row")
