"""Failed logins count per account and client address, under a higher ceiling per account:
an attacker at one address cannot lock the account's owner out at another."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import app_for, closed, make_settings, redis_or_skip
from tests.factories import PASSWORD, register

WRONG = "wrong-wrong-wrong-1"


@pytest.fixture(params=["memory", "redis"])
async def app(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[FastAPI]:
    """Per-address limit 3/minute, ceiling 5/minute; counts in memory or in Redis."""
    redis_url = None
    if request.param == "redis":
        redis_url = await redis_or_skip()
    settings = make_settings(
        database_url,
        redis_url=redis_url,
        rate_limit_login_account="3/minute",
        rate_limit_login_account_ceiling="5/minute",
    )
    application = app_for(settings)
    yield application
    await closed(application)


@pytest.fixture
def at(app: FastAPI) -> Callable[[], httpx.AsyncClient]:
    """A client at an address of its own (new for each test, as Redis keeps its counts)."""

    def client() -> httpx.AsyncClient:
        address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(256)}"
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://test/api/v1")

    return client


async def _login(client: httpx.AsyncClient, email: str, password: str) -> int:
    form = {"username": email, "password": password}
    return (await client.post("/auth/login", data=form)).status_code


async def test_failures_at_one_address_do_not_lock_out_another(
    at: Callable[[], httpx.AsyncClient],
) -> None:
    async with at() as attacker, at() as owner:
        email = str((await register(owner))["email"])
        statuses = [await _login(attacker, email, WRONG) for _ in range(10)]
        assert statuses == [401, 401, 401] + [429] * 7
        # Refused before the password is checked, even the right one, at that address.
        assert await _login(attacker, email, PASSWORD) == 429
        # Refused attempts are not failures: one address alone stays under the ceiling (5).
        assert await _login(owner, email, PASSWORD) == 200


async def test_successful_logins_are_not_counted(at: Callable[[], httpx.AsyncClient]) -> None:
    async with at() as owner:
        email = str((await register(owner))["email"])
        assert [await _login(owner, email, PASSWORD) for _ in range(6)] == [200] * 6
        # Failures count, and refuse once they reach the limit.
        assert [await _login(owner, email, WRONG) for _ in range(3)] == [401] * 3
        response = await owner.post("/auth/login", data={"username": email, "password": PASSWORD})
        assert response.status_code == 429
        assert response.json()["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1


async def test_failures_from_many_addresses_reach_the_account_ceiling(
    at: Callable[[], httpx.AsyncClient],
) -> None:
    async with at() as owner:
        email = str((await register(owner))["email"])
        for _ in range(5):  # five addresses, one failure each: under each address's limit
            async with at() as attacker:
                assert await _login(attacker, email, WRONG) == 401
        async with at() as another:
            assert await _login(another, email, WRONG) == 429
        assert await _login(owner, email, PASSWORD) == 429
        # The ceiling is the account's: another account is not touched.
        other = str((await register(owner))["email"])
        assert await _login(owner, other, PASSWORD) == 200


async def test_the_email_counts_in_any_case(at: Callable[[], httpx.AsyncClient]) -> None:
    async with at() as attacker, at() as owner:
        email = str((await register(owner))["email"])
        cases = [email.upper(), email.title(), email]
        assert [await _login(attacker, e, WRONG) for e in cases] == [401, 401, 401]
        assert await _login(attacker, email.upper(), PASSWORD) == 429
