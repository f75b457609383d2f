"""What keys cost: nothing to a session's token (a JWT is never looked up as a key), and one
query to a key's request, its key and owner together."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.booking.test_change import statements_of
from tests.factories import Clock, api_key, bookable_provider, guest_booking, signed_in

DAY = "2027-03-02"


def _queries(statements: list[str]) -> list[str]:
    return [s for s in statements if s.split()[0] in {"SELECT", "INSERT", "UPDATE", "WITH"}]


async def test_a_sessions_token_never_meets_the_keys_table(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> None:
    provider, profile = await bookable_provider(client)
    customer = await signed_in(client)
    with statements_of(app) as statements:
        assert (await client.get("/auth/me", headers=provider.headers)).status_code == 200
        booked = await client.post(
            "/appointments/",
            headers=customer.headers,
            json={"provider_id": profile["id"], "start_datetime": f"{DAY}T10:00:00Z"},
        )
        assert booked.status_code == 201, booked.text
    assert statements
    assert not [s for s in statements if "api_keys" in s]


async def test_a_keys_request_costs_one_query(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> None:
    provider, profile = await bookable_provider(client)
    key = await api_key(client, provider)
    assert (await client.get("/auth/me", headers=key)).status_code == 200  # its first use
    await app.state.slotwise.api_key_uses.settle()
    with statements_of(app) as statements:
        assert (await client.get("/auth/me", headers=key)).status_code == 200
    await app.state.slotwise.api_key_uses.settle()
    (query,) = _queries(statements)
    assert "FROM api_keys JOIN users" in query
    with statements_of(app) as statements:
        booked = await client.post(
            "/appointments/", headers=key, json=guest_booking(profile["id"], f"{DAY}T11:00:00Z")
        )
        assert booked.status_code == 201, booked.text
    assert len([s for s in _queries(statements) if "api_keys" in s]) == 1
