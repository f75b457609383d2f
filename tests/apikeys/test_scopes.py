"""A key acts as its owner within its scopes: `read` reads, `book` books (a guest's booking
too), `manage` manages; outside them 403 `insufficient_scope`, and the routes of credentials
take no key at all (403 `session_required`)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from slotwise.booking.models import Appointment
from slotwise.main import create_app
from slotwise.state import get_now
from tests.conftest import make_settings
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    api_key,
    bookable_provider,
    count_rows,
    guest_booking,
    signed_in,
)

DAY = "2027-03-02"


def _refused(response: httpx.Response, scope: str, granted: list[str]) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "insufficient_scope"
    assert body["details"] == {"required_scope": scope, "scopes": granted}


async def _booked(client: httpx.AsyncClient, provider_id: object, hour: str) -> str:
    response = await client.post(
        "/appointments/", json=guest_booking(provider_id, f"{DAY}T{hour}:00:00Z")
    )
    assert response.status_code == 201, response.text
    appointment_id: str = response.json()["id"]
    return appointment_id


async def test_read_reads_and_does_nothing_else(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> None:
    provider, profile = await bookable_provider(client)
    aid = await _booked(client, profile["id"], "10")
    key = await api_key(client, provider, "read")
    for path in ("/auth/me", "/providers/me", "/appointments/", f"/appointments/{aid}"):
        assert (await client.get(path, headers=key)).status_code == 200, path
    _refused(
        await client.patch("/providers/me", headers=key, json={"bio": "x"}), "manage", ["read"]
    )
    _refused(
        await client.post(f"/appointments/{aid}/cancel", headers=key, json={}), "book", ["read"]
    )
    _refused(
        await client.post(
            "/appointments/", headers=key, json=guest_booking(profile["id"], f"{DAY}T11:00:00Z")
        ),
        "book",
        ["read"],
    )
    assert await count_rows(app, Appointment) == 1


async def test_manage_manages_and_neither_reads_nor_books(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> None:
    provider, profile = await bookable_provider(client)
    aid = await _booked(client, profile["id"], "10")
    key = await api_key(client, provider, "manage")
    updated = await client.patch("/providers/me", headers=key, json={"bio": "Set by a key"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["bio"] == "Set by a key"
    confirmed = await client.patch(
        f"/appointments/{aid}/status", headers=key, json={"status": "confirmed"}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["history"][-1]["actor_id"] == provider.id  # as its owner
    hours = await client.post(
        f"/providers/{profile['public_handle']}/time-off",
        headers=key,
        json={"start_date": "2027-04-01", "end_date": "2027-04-02"},
    )
    assert hours.status_code == 201, hours.text
    _refused(await client.get("/providers/me", headers=key), "read", ["manage"])
    _refused(
        await client.post(f"/appointments/{aid}/cancel", headers=key, json={}),
        "book",
        ["manage"],
    )


async def test_book_books_cancels_and_reschedules(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> None:
    provider, profile = await bookable_provider(client)
    key = await api_key(client, provider, "book")
    booked = await client.post(
        "/appointments/", headers=key, json=guest_booking(profile["id"], f"{DAY}T10:00:00Z")
    )
    assert booked.status_code == 201, booked.text
    aid = booked.json()["id"]
    moved = await client.post(
        f"/appointments/{aid}/reschedule",
        headers=key,
        json={"new_start_time": f"{DAY}T12:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["start_at"] == f"{DAY}T12:00:00Z"
    _refused(
        await client.patch(f"/appointments/{aid}/status", headers=key, json={"status": "declined"}),
        "manage",
        ["book"],
    )
    _refused(await client.get(f"/appointments/{aid}", headers=key), "read", ["book"])
    cancelled = await client.post(f"/appointments/{aid}/cancel", headers=key, json={})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


async def test_a_book_key_books_for_guests_and_as_its_owner(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider_a, profile_a = await bookable_provider(client)
    _, profile_b = await bookable_provider(client)
    key = await api_key(client, provider_a, "book")

    guest = await client.post(
        "/appointments/",
        headers=key,
        json=guest_booking(profile_a["id"], f"{DAY}T10:00:00Z", "pat@example.com"),
    )
    assert guest.status_code == 201, guest.text
    body = guest.json()
    assert body["client_id"] is None
    assert body["guest"]["email"] == "pat@example.com"
    assert body["manage_token"]  # the guest manages it as any guest does
    assert body["history"][0]["actor_role"] == "guest"
    managed = await client.get(f"/bookings/{body['manage_token']}")
    assert managed.json()["id"] == body["id"]

    # The same, once only, with an Idempotency-Key.
    once = guest_booking(profile_a["id"], f"{DAY}T11:00:00Z", "sam@example.com")
    first = await client.post(
        "/appointments/", headers={**key, "Idempotency-Key": "page-42"}, json=once
    )
    replay = await client.post(
        "/appointments/", headers={**key, "Idempotency-Key": "page-42"}, json=once
    )
    assert first.status_code == replay.status_code == 201, first.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert first.json()["client_id"] is None

    # Without guest details the key books as its owner, a client of another provider.
    own = await client.post(
        "/appointments/",
        headers=key,
        json={"provider_id": profile_b["id"], "start_datetime": f"{DAY}T10:00:00Z"},
    )
    assert own.status_code == 201, own.text
    assert own.json()["client_id"] == provider_a.id
    assert own.json()["guest"] is None


async def test_a_keys_guest_bookings_are_not_limited_per_address(database_url: str) -> None:
    app = create_app(make_settings(database_url, rate_limit_guest_booking_ip="1/hour"))
    app.dependency_overrides[get_now] = Clock(BOOKING_NOW)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
            provider, profile = await bookable_provider(client)
            key = await api_key(client, provider, "book")
            anonymous = [
                await client.post(
                    "/appointments/", json=guest_booking(profile["id"], f"{DAY}T{hour}:00:00Z")
                )
                for hour in ("09", "10")
            ]
            assert [r.status_code for r in anonymous] == [201, 429]
            with_key = [
                await client.post(
                    "/appointments/",
                    headers=key,
                    json=guest_booking(profile["id"], f"{DAY}T{hour}:00:00Z"),
                )
                for hour in ("11", "12", "13")
            ]
            assert [r.status_code for r in with_key] == [201, 201, 201]
    finally:
        await app.state.slotwise.aclose()


async def test_a_key_makes_and_ends_no_credentials(client: httpx.AsyncClient) -> None:
    provider = await signed_in(client, "provider")
    key = await api_key(client, provider)  # every scope
    attempts = [
        ("POST", "/api-keys", {"name": "another", "scopes": ["read"]}),
        ("GET", "/api-keys", None),
        ("PATCH", "/users/me", {"full_name": "Changed by a key"}),
        (
            "PATCH",
            "/users/me",
            {"current_password": provider.password, "new_password": "a-new-long-passphrase"},
        ),
        ("POST", "/users/me/calendar-feed", None),
        ("DELETE", "/users/me/calendar-feed", None),
        ("POST", "/auth/logout", None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, headers=key, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "session_required"
    listed = await client.get("/api-keys", headers=provider.headers)
    assert listed.json()["total"] == 1
    me = await client.get("/auth/me", headers=key)
    assert me.json()["full_name"] != "Changed by a key"
    assert (await _sign_in(client, provider)).status_code == 200  # the password is unchanged


async def _sign_in(client: httpx.AsyncClient, account: Account) -> httpx.Response:
    return await client.post(
        "/auth/login", data={"username": account.email, "password": account.password}
    )


async def test_a_book_key_books_a_series_for_a_guest_and_a_read_key_does_not(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider, profile = await bookable_provider(client, requires_confirmation=False)
    series = {
        "provider_id": profile["id"],
        "start_datetime": f"{DAY}T10:00:00Z",
        "count": 2,
        "guest_details": {"name": "Pat", "email": "pat@example.com"},
    }
    reader = await api_key(client, provider, "read")
    _refused(
        await client.post("/appointments/series", headers=reader, json=series), "book", ["read"]
    )

    booker = await api_key(client, provider, "book")
    booked = await client.post("/appointments/series", headers=booker, json=series)
    assert booked.status_code == 201, booked.text
    occurrences = booked.json()["occurrences"]
    assert len(occurrences) == 2
    assert {o["guest"]["email"] for o in occurrences} == {"pat@example.com"}
    assert {o["client_id"] for o in occurrences} == {None}
    assert booked.json()["manage_token"]  # the guest manages the series as any guest does
