"""Redis configured but unreachable: no request answers 500.

The denylist fails closed (503 ``dependency_unavailable`` with ``Retry-After``): a token
that cannot be checked is not taken as unrevoked. Rate limits fail over to this process's
memory: they still hold. Nothing else needs Redis, so everything else goes on.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from slotwise.main import create_app
from slotwise.state import get_now
from tests.conftest import make_settings
from tests.factories import (
    BOOKING_NOW,
    PASSWORD,
    Clock,
    bookable_provider,
    guest_booking,
    register,
    signed_in,
)

NOTHING_LISTENS = "redis://127.0.0.1:1/0"
DAY = "2027-03-02"


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t/api/v1")


@pytest.fixture
async def dead_redis_app(database_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(
        make_settings(database_url, redis_url=NOTHING_LISTENS, rate_limit_login_account="3/minute")
    )
    app.dependency_overrides[get_now] = Clock(BOOKING_NOW)
    yield app
    await app.state.slotwise.aclose()


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "dependency_unavailable"
    assert response.json()["details"] == {"dependency": "redis", "retry_after": 5}
    assert response.headers["Retry-After"] == "5"


async def test_without_redis_tokens_fail_closed_and_the_rest_goes_on(
    app: FastAPI, client: httpx.AsyncClient, dead_redis_app: FastAPI
) -> None:
    # The world is made while Redis is not configured; then a worker whose Redis is down.
    app.dependency_overrides[get_now] = Clock(BOOKING_NOW)
    _, provider = await bookable_provider(client)
    customer = await signed_in(client)
    started = time.monotonic()
    async with _client(dead_redis_app) as dead:
        # Signing up and in needs only the rate limits: counted in memory meanwhile.
        user = await register(dead)
        login = await dead.post(
            "/auth/login", data={"username": user["email"], "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        # Any request with a token: the denylist cannot be read, so no token is honoured.
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        _unavailable(await dead.get("/users/me", headers=headers))
        _unavailable(await dead.get("/appointments/me", headers=customer.headers))
        booked = await dead.post(
            "/appointments/",
            headers=customer.headers,
            json={"provider_id": provider["id"], "start_datetime": f"{DAY}T10:00:00Z"},
        )
        _unavailable(booked)
        # ... nor can a logout be recorded: refused as a whole, to be retried.
        _unavailable(
            await dead.post(
                "/auth/logout",
                headers=headers,
                json={"refresh_token": login.json()["refresh_token"]},
            )
        )
        # Without a token, nothing needs Redis.
        guest = await dead.post(
            "/appointments/", json=guest_booking(provider["id"], f"{DAY}T11:00:00Z")
        )
        assert guest.status_code == 201, guest.text
        assert (await dead.get(f"/providers/{provider['id']}/slots?date={DAY}")).status_code == 200
        health = await dead.get("http://t/health")
    assert health.status_code == 503
    assert health.json()["checks"]["redis"] == "error"
    assert time.monotonic() - started < 10  # refused at once, not after redis-py's retries
    # The logout was not half done: the session's refresh token still works.
    refreshed = await client.post(
        "/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_without_redis_rate_limits_hold_in_memory(dead_redis_app: FastAPI) -> None:
    async with _client(dead_redis_app) as dead:
        user = await register(dead)
        statuses = [
            (
                await dead.post(
                    "/auth/login", data={"username": user["email"], "password": "wrong-password"}
                )
            ).status_code
            for _ in range(4)
        ]
    assert statuses == [401, 401, 401, 429]


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A port that takes connections and never answers (a hung Redis, a black hole)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


async def test_a_silent_redis_costs_a_request_its_timeouts_only(
    app: FastAPI, client: httpx.AsyncClient, database_url: str, silent_redis: str
) -> None:
    customer = await signed_in(client)
    hung = create_app(
        make_settings(database_url, redis_url=silent_redis, redis_timeout_seconds=0.2)
    )
    try:
        async with _client(hung) as dead:
            started = time.monotonic()
            _unavailable(await dead.get("/users/me", headers=customer.headers))
            elapsed = time.monotonic() - started
    finally:
        await hung.state.slotwise.aclose()
    assert elapsed < 2  # two timeouts of 0.2 s (one retry), not redis-py's 10 x 5 s


async def test_routes_that_read_a_token_document_the_503(client: httpx.AsyncClient) -> None:
    paths = (await client.get("http://t/openapi.json")).json()["paths"]
    assert "503" in paths["/api/v1/users/me"]["get"]["responses"]
    assert "503" in paths["/api/v1/appointments/"]["post"]["responses"]  # a token is optional
    assert "503" not in paths["/api/v1/providers/{ref}/slots"]["get"]["responses"]
