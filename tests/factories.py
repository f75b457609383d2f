"""Small async helpers that create accounts and sign them in through the API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from slotwise.config import Settings
from slotwise.users.admin import create_admin

PASSWORD = "a-long-and-unusual-passphrase"


@dataclass
class Account:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def count_rows(app: FastAPI, model: Any, **where: Any) -> int:
    """How many rows of the model's table match the column values, read afresh."""
    async with app.state.slotwise.db.session(writes=False) as session:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int(await session.scalar(query) or 0)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def register(
    client: httpx.AsyncClient,
    *,
    role: str = "client",
    email: str | None = None,
    password: str = PASSWORD,
    full_name: str = "Test Person",
) -> dict[str, object]:
    response = await client.post(
        "/auth/register",
        json={
            "email": email or unique_email(role),
            "password": password,
            "full_name": full_name,
            "role": role,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = await client.post("/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def signed_in(client: httpx.AsyncClient, role: str = "client") -> Account:
    user = await register(client, role=role)
    email = str(user["email"])
    tokens = await login(client, email)
    return Account(
        str(user["id"]), email, PASSWORD, tokens["access_token"], tokens["refresh_token"]
    )


async def signed_in_admin(client: httpx.AsyncClient, settings: Settings) -> Account:
    email = unique_email("admin")
    user_id = await create_admin(settings, email=email, full_name="Admin", password=PASSWORD)
    tokens = await login(client, email)
    return Account(str(user_id), email, PASSWORD, tokens["access_token"], tokens["refresh_token"])


async def provider_with_profile(
    client: httpx.AsyncClient, **profile: object
) -> tuple[Account, dict[str, object]]:
    """A signed-in provider with a profile (handle unique per call)."""
    account = await signed_in(client, "provider")
    body: dict[str, object] = {"public_handle": f"p-{uuid.uuid4().hex[:10]}"}
    body.update(profile)
    response = await client.post("/providers/me", headers=account.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return account, created


async def add_pattern(
    client: httpx.AsyncClient, account: Account, day: int, start: str, end: str
) -> dict[str, object]:
    response = await client.post(
        "/providers/me/availability",
        headers=account.headers,
        json={"day_of_week": day, "start_time": start, "end_time": end},
    )
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


async def bookable_provider(
    client: httpx.AsyncClient,
    *,
    hours: tuple[str, str] = ("09:00:00", "17:00:00"),
    **profile: object,
) -> tuple[Account, dict[str, object]]:
    """A provider open every day during ``hours``, in UTC unless a timezone is given."""
    values: dict[str, object] = {"timezone": "UTC", "max_advance_days": 365}
    values.update(profile)
    account, created = await provider_with_profile(client, **values)
    for day in range(7):
        await add_pattern(client, account, day, *hours)
    return account, created


def guest_booking(
    provider_id: object, start: str, email: str | None = None, **extra: object
) -> dict[str, object]:
    body: dict[str, object] = {
        "provider_id": provider_id,
        "start_datetime": start,
        "guest_details": {"name": "Guest", "email": email or unique_email("guest")},
    }
    body.update(extra)
    return body


BOOKING_NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)  # a Monday


class Clock:
    """The request clock, under the test's control."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def api_key(
    client: httpx.AsyncClient, owner: Account, *scopes: str, **extra: object
) -> dict[str, str]:
    """Headers that authenticate with a new API key of ``owner``'s (all scopes by default)."""
    body: dict[str, object] = {"name": "Integration", "scopes": list(scopes or SCOPES)}
    body.update(extra)
    response = await client.post("/api-keys", headers=owner.headers, json=body)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


SCOPES = ("read", "book", "manage")
