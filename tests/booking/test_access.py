"""Who sees what: clients and providers their own, admins all; anyone else a 404. An API
key reaches exactly what its owner does."""

from __future__ import annotations

import httpx
import pytest

from slotwise.config import Settings
from tests.factories import (
    Account,
    Clock,
    api_key,
    bookable_provider,
    guest_booking,
    signed_in,
    signed_in_admin,
)

DAY = "2027-03-02"
NOT_FOUND = "appointment_not_found"


@pytest.mark.parametrize("credential", ["session", "api_key"])
async def test_authorization_matrix(
    client: httpx.AsyncClient, clock: Clock, settings: Settings, credential: str
) -> None:
    """Every attempt as a session's token, or as an API key of the same account with every
    scope (clients have no keys: their attempts are a session's either way)."""

    async def headers(account: Account) -> dict[str, str]:
        if credential == "api_key" and account in (provider_a, provider_b, admin):
            return await api_key(client, account)
        return account.headers

    provider_a, profile_a = await bookable_provider(client)
    provider_b, _ = await bookable_provider(client)
    client_a = await signed_in(client)
    client_b = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=client_a.headers,
        json={"provider_id": profile_a["id"], "start_datetime": f"{DAY}T10:00:00Z"},
    )
    aid = booked.json()["id"]
    guest = await client.post(
        "/appointments/", json=guest_booking(profile_a["id"], f"{DAY}T11:00:00Z")
    )
    guest_token = guest.json()["manage_token"]
    admin = await signed_in_admin(client, settings)
    as_ = {account.id: await headers(account) for account in (client_a, client_b)}
    as_ |= {account.id: await headers(account) for account in (provider_a, provider_b, admin)}

    attempts = [
        ("GET", f"/appointments/{aid}", None),
        ("PATCH", f"/appointments/{aid}", {"notes": "mine"}),
        ("PATCH", f"/appointments/{aid}/status", {"status": "cancelled"}),
        ("POST", f"/appointments/{aid}/cancel", {}),
        ("DELETE", f"/appointments/{aid}", None),
        ("POST", f"/appointments/{aid}/reschedule", {"new_start_time": f"{DAY}T15:00:00Z"}),
        ("POST", f"/appointments/{aid}/mark-completed", None),
        ("POST", f"/appointments/{aid}/mark-no-show", None),
    ]
    for outsider in (client_b, provider_b):
        for method, path, body in attempts:
            response = await client.request(method, path, headers=as_[outsider.id], json=body)
            assert response.status_code == 404, (method, path)
            assert response.json()["code"] == NOT_FOUND
            assert "start_at" not in response.text
    for method, path, _ in attempts[:1]:
        assert (await client.request(method, path)).status_code == 401

    # The other guest's token does not reach this appointment, nor does a forged one.
    guest_view = await client.get(f"/bookings/{guest_token}")
    assert guest_view.json()["id"] != aid
    for forged in ("A" * 43, guest_token[:-1] + ("A" if guest_token[-1] != "A" else "B")):
        response = await client.post(f"/bookings/{forged}/cancel")
        assert response.status_code == 404

    # Lists leak nothing either.
    for outsider in (client_b, provider_b):
        listed = await client.get("/appointments/", headers=as_[outsider.id])
        assert listed.json()["total"] == 0
    assert (await client.get("/appointments/", headers=as_[client_a.id])).json()["total"] == 1
    assert (await client.get("/appointments/", headers=as_[provider_a.id])).json()["total"] == 2
    assert (await client.get("/appointments/", headers=as_[admin.id])).json()["total"] == 2
    assert (await client.get(f"/appointments/{aid}", headers=as_[admin.id])).status_code == 200
    assert (await client.get(f"/appointments/{aid}", headers=as_[provider_a.id])).status_code == 200


async def test_reading_lists_filters_and_pages(client: httpx.AsyncClient, clock: Clock) -> None:
    provider, profile = await bookable_provider(client)
    customer = await signed_in(client)
    ids = []
    for hour in ("09", "10", "11", "12"):
        booked = await client.post(
            "/appointments/",
            headers=customer.headers,
            json={"provider_id": profile["id"], "start_datetime": f"{DAY}T{hour}:00:00Z"},
        )
        ids.append(booked.json()["id"])
    await client.patch(
        f"/appointments/{ids[0]}/status", headers=provider.headers, json={"status": "confirmed"}
    )
    await client.post(f"/appointments/{ids[1]}/cancel", headers=customer.headers)

    page = await client.get("/appointments/", headers=customer.headers, params={"limit": 2})
    assert page.json()["total"] == 4
    assert [a["id"] for a in page.json()["items"]] == ids[:2]
    pending = await client.get(
        "/appointments/", headers=customer.headers, params={"status": "pending"}
    )
    assert pending.json()["total"] == 2
    both = await client.get(
        "/appointments/",
        headers=customer.headers,
        params=[("status", "pending"), ("status", "confirmed")],
    )
    assert both.json()["total"] == 3
    window = await client.get(
        "/appointments/",
        headers=customer.headers,
        params={"from": f"{DAY}T10:00:00Z", "to": f"{DAY}T12:00:00Z"},
    )
    assert [a["id"] for a in window.json()["items"]] == ids[1:3]
    by_provider = await client.get(
        "/appointments/", headers=customer.headers, params={"provider_id": profile["id"]}
    )
    assert by_provider.json()["total"] == 4
    bad = await client.get("/appointments/", headers=customer.headers, params={"status": "x"})
    assert bad.status_code == 422

    mine = await client.get("/appointments/me", headers=customer.headers)
    assert mine.json()["total"] == 4
    as_provider = await client.get("/appointments/me", headers=provider.headers)
    assert as_provider.json()["total"] == 4
    upcoming = await client.get("/doctors/me/appointments", headers=provider.headers)
    assert [a["id"] for a in upcoming.json()["items"]] == [ids[0], ids[2], ids[3]]
    not_provider = await client.get("/providers/me/appointments", headers=customer.headers)
    assert not_provider.status_code == 403


async def test_provider_who_is_also_a_client_sees_both(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider_a, profile_a = await bookable_provider(client)
    _, profile_b = await bookable_provider(client)
    await client.post("/appointments/", json=guest_booking(profile_a["id"], f"{DAY}T09:00:00Z"))
    own_booking = await client.post(
        "/appointments/",
        headers=provider_a.headers,
        json={"provider_id": profile_b["id"], "start_datetime": f"{DAY}T14:00:00Z"},
    )
    assert own_booking.status_code == 201
    mine = await client.get("/appointments/me", headers=provider_a.headers)
    assert mine.json()["total"] == 2


async def test_list_filters_need_an_offset(client: httpx.AsyncClient, clock: Clock) -> None:
    customer = await signed_in(client)
    for value in ("2026-11-25", "2026-11-25T00:00:00"):
        response = await client.get(
            "/appointments/", headers=customer.headers, params={"from": value}
        )
        assert response.status_code == 422, value


async def test_admin_blocks_an_email_before_any_no_show(
    client: httpx.AsyncClient, clock: Clock, settings: Settings
) -> None:
    admin = await signed_in_admin(client, settings)
    _, provider = await bookable_provider(client)
    # A guest's standing is its own (guest: + email), apart from the account's.
    blocked = await client.patch(
        "/client-standings/guest:spammer@example.com",
        headers=admin.headers,
        json={"blocked": True},
    )
    assert blocked.json() == {
        "email": "guest:spammer@example.com",
        "no_show_count": 0,
        "blocked": True,
    }
    refused = await client.post(
        "/appointments/",
        json=guest_booking(provider["id"], f"{DAY}T09:00:00Z", "spammer@example.com"),
    )
    assert refused.json()["code"] == "client_blocked"
