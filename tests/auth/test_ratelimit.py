"""Rate limits per IP, the off switch, and the Redis storage."""

from __future__ import annotations

import uuid

import httpx
import pytest

from slotwise import redis_client
from slotwise.errors import RateLimited
from slotwise.main import create_app
from slotwise.ratelimit import RateLimiter
from tests.conftest import make_settings
from tests.factories import PASSWORD, unique_email


def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t/api/v1")  # type: ignore[arg-type]


async def test_register_is_rate_limited_per_ip(database_url: str) -> None:
    app = create_app(make_settings(database_url, rate_limit_register_ip="3/hour"))
    async with _client(app) as client:
        statuses = [
            (
                await client.post(
                    "/auth/register",
                    json={"email": unique_email(), "password": PASSWORD, "full_name": "X"},
                )
            ).status_code
            for _ in range(4)
        ]
    await app.state.slotwise.db.dispose()
    assert statuses == [201, 201, 201, 429]


async def test_refresh_is_rate_limited_per_ip(database_url: str) -> None:
    app = create_app(make_settings(database_url, rate_limit_refresh_ip="2/minute"))
    async with _client(app) as client:
        statuses = [
            (await client.post("/auth/refresh", json={"refresh_token": "x"})).status_code
            for _ in range(3)
        ]
    await app.state.slotwise.db.dispose()
    assert statuses == [401, 401, 429]


async def test_setting_a_reset_password_is_rate_limited_per_ip(database_url: str) -> None:
    app = create_app(make_settings(database_url, rate_limit_reset_ip="2/hour"))
    body = {"token": "x" * 43, "new_password": PASSWORD}
    async with _client(app) as client:
        answers = [await client.post("/auth/reset-password", json=body) for _ in range(3)]
        # Counted apart from the requests for a link: those still go through.
        asked = await client.post("/auth/forgot-password", json={"email": unique_email()})
    await app.state.slotwise.db.dispose()
    assert [answer.status_code for answer in answers] == [400, 400, 429]
    assert answers[-1].json()["code"] == "rate_limited"
    assert asked.status_code == 202, asked.text


async def test_guessing_the_current_password_counts_as_failed_logins(database_url: str) -> None:
    """A stolen session cannot try passwords faster than a login could: a wrong
    current_password is a failure of the account's, and at the limit even the right one
    waits."""
    app = create_app(make_settings(database_url, rate_limit_login_account="3/minute"))
    async with _client(app) as client:
        email = unique_email()
        registered = await client.post(
            "/auth/register", json={"email": email, "password": PASSWORD, "full_name": "X"}
        )
        assert registered.status_code == 201, registered.text
        tokens = (
            await client.post("/auth/login", data={"username": email, "password": PASSWORD})
        ).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        new = "another-long-passphrase-42"

        def change(current: str) -> dict[str, str]:
            return {"current_password": current, "new_password": new}

        wrong = [
            await client.patch("/users/me", headers=headers, json=change(f"guess-{n}-passphrase"))
            for n in range(3)
        ]
        right = await client.patch("/users/me", headers=headers, json=change(PASSWORD))
        login = await client.post("/auth/login", data={"username": email, "password": PASSWORD})
    await app.state.slotwise.db.dispose()
    assert [answer.status_code for answer in wrong] == [403, 403, 403]
    assert right.status_code == 429
    assert right.json()["code"] == "rate_limited"
    assert login.status_code == 429  # the same count as the account's logins


async def test_rate_limiting_can_be_switched_off(database_url: str) -> None:
    app = create_app(
        make_settings(database_url, rate_limit_enabled=False, rate_limit_refresh_ip="1/minute")
    )
    async with _client(app) as client:
        statuses = {
            (await client.post("/auth/refresh", json={"refresh_token": "x"})).status_code
            for _ in range(5)
        }
    await app.state.slotwise.db.dispose()
    assert statuses == {401}


async def test_redis_storage_is_shared_between_limiters(redis_url: str) -> None:
    """Two processes' limiters (two instances here) count against one Redis."""
    clients = [redis_client.connect(redis_url, timeout_seconds=1) for _ in range(2)]
    first, second = (RateLimiter(enabled=True, redis=client) for client in clients)
    key = uuid.uuid4().hex
    await first.hit("2/minute", "test", key)
    await second.hit("2/minute", "test", key)
    with pytest.raises(RateLimited):
        await first.hit("2/minute", "test", key)
    for client in clients:
        await client.aclose()
