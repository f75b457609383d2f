from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from slotwise.config import Settings
from slotwise.state import get_now
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    signed_in,
    signed_in_admin,
)

DAY = "2027-03-02"  # a Tuesday, the day after BOOKING_NOW


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    yield controlled
    app.dependency_overrides.pop(get_now, None)


@dataclass
class Crew:
    """A team of ``members`` (providers open 09:00-17:00 UTC every day) made by an admin,
    with a round-robin and a collective service of 60 minutes."""

    admin: Account
    team: dict[str, Any]
    members: list[tuple[Account, dict[str, Any]]]
    round_robin: dict[str, Any]
    collective: dict[str, Any]

    @property
    def handle(self) -> str:
        return str(self.team["public_handle"])


async def make_crew(
    client: httpx.AsyncClient, settings: Settings, size: int = 3, **member: Any
) -> Crew:
    admin = await signed_in_admin(client, settings)
    created = await client.post(
        "/teams", headers=admin.headers, json={"public_handle": f"crew-{size}-x", "name": "Crew"}
    )
    assert created.status_code == 201, created.text
    team = created.json()
    members = []
    for index in range(size):
        account, profile = await bookable_provider(client)
        body = {"provider": profile["public_handle"], **member.get(str(index), {})}
        added = await client.post(f"/teams/{team['id']}/members", headers=admin.headers, json=body)
        assert added.status_code == 201, added.text
        members.append((account, profile))
    services = {}
    for mode in ("round_robin", "collective"):
        made = await client.post(
            f"/teams/{team['id']}/services",
            headers=admin.headers,
            json={"name": f"Meeting {mode}", "mode": mode, "duration_minutes": 60},
        )
        assert made.status_code == 201, made.text
        services[mode] = made.json()
    return Crew(admin, team, members, services["round_robin"], services["collective"])


@pytest.fixture
async def crew(client: httpx.AsyncClient, settings: Settings, clock: Clock) -> Crew:
    return await make_crew(client, settings)


async def book(
    client: httpx.AsyncClient,
    crew: Crew,
    service: dict[str, Any],
    start: str,
    who: Account | None = None,
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"service_id": service["id"], "start_datetime": start, **extra}
    headers = who.headers if who else {}
    if who is None and "guest_details" not in extra:
        body["guest_details"] = {"name": "Guest", "email": f"g-{start[11:13]}@example.com"}
    return await client.post(f"/teams/{crew.handle}/appointments", json=body, headers=headers)


__all__ = ["DAY", "Crew", "book", "make_crew", "signed_in"]
