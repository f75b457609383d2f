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
