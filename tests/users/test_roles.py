"""Roles: no API path grants admin, every role change is recorded, and a provider demoted or
deactivated stops being listed, offered and bookable at once (caches included), while the
appointments they have stay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from slotwise.config import Settings
from slotwise.main import create_app
from slotwise.state import get_now
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    guest_booking,
    signed_in,
    signed_in_admin,
)

DAY = "2027-03-03"  # two days after BOOKING_NOW


@pytest.fixture
def clock(app: FastAPI) -> Clock:
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    return controlled


async def test_no_api_path_grants_admin(client: httpx.AsyncClient, settings: Settings) -> None:
    admin = await signed_in_admin(client, settings)
    target = await signed_in(client)
    for role in ("admin", "ADMIN", " admin "):
        response = await client.patch(
            f"/users/{target.id}", headers=admin.headers, json={"role": role}
        )
        assert response.status_code == 422, role
        body = response.json()
        assert body["code"] == "validation_error"
        assert body["details"][0]["loc"] == ["body", "role"]
        assert "slotwise create-admin" in body["details"][0]["msg"]
    read = await client.get(f"/users/{target.id}", headers=admin.headers)
    assert read.json()["role"] == "client"
    changes = await client.get(f"/users/{target.id}/role-changes", headers=admin.headers)
    assert changes.json()["total"] == 0


async def test_every_role_change_is_recorded(client: httpx.AsyncClient, settings: Settings) -> None:
    admin = await signed_in_admin(client, settings)
    other_admin = await signed_in_admin(client, settings)
    target = await signed_in(client)
    for by, role in ((admin, "provider"), (admin, "provider"), (other_admin, "client")):
        body = {"role": role}
        response = await client.patch(f"/users/{target.id}", headers=by.headers, json=body)
        assert response.status_code == 200
        assert response.json()["role"] == role
    # An admin may demote another admin (never themself): recorded too.
    demoted = await client.patch(
        f"/users/{other_admin.id}", headers=admin.headers, json={"role": "provider"}
    )
    assert demoted.status_code == 200
    history = await client.get(f"/users/{target.id}/role-changes", headers=admin.headers)
    assert history.status_code == 200
    body = history.json()
    assert body["total"] == 2  # the second, to the same role, changed nothing
    first, second = body["items"]
    assert (first["from_role"], first["to_role"], first["changed_by_id"]) == (
        "client",
        "provider",
        admin.id,
    )
    assert (second["from_role"], second["to_role"], second["changed_by_id"]) == (
        "provider",
        "client",
        other_admin.id,
    )
    assert first["user_id"] == target.id
    assert first["changed_at"] <= second["changed_at"]
    assert first["changed_at"].endswith(("Z", "+00:00"))
    of_admin = await client.get(f"/users/{other_admin.id}/role-changes", headers=admin.headers)
    assert [(c["from_role"], c["to_role"]) for c in of_admin.json()["items"]] == [
        ("admin", "provider")
    ]
    page = await client.get(
        f"/users/{target.id}/role-changes", headers=admin.headers, params={"limit": 1, "offset": 1}
    )
    assert page.json()["items"] == [second]


async def test_role_changes_are_for_admins_only(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await signed_in_admin(client, settings)
    target = await signed_in(client)
    own = await client.get(f"/users/{target.id}/role-changes", headers=target.headers)
    assert own.status_code == 403
    assert (await client.get(f"/users/{target.id}/role-changes")).status_code == 401
    missing = await client.get(
        "/users/00000000-0000-0000-0000-000000000000/role-changes", headers=admin.headers
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "user_not_found"


async def _book(
    client: httpx.AsyncClient,
    booker: Account | None,
    profile: Any,
    at: str,
    *,
    idempotency_key: str | None = None,
) -> httpx.Response:
    """A booking through the booking writer, or (with a key) in a transaction of its own."""
    start = f"{DAY}T{at}:00Z"
    if booker is None:
        body = guest_booking(profile["id"], start)
    else:
        body = {"provider_id": profile["id"], "start_datetime": start}
    headers = dict(booker.headers) if booker else {}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return await client.post("/appointments/", headers=headers, json=body)


async def _slots(client: httpx.AsyncClient, handle: str) -> httpx.Response:
    return await client.get(f"/providers/{handle}/slots", params={"date": DAY})


async def _slot_cache_in_use(app: FastAPI) -> None:
    """Wait until the worker's slot cache may be used (PostgreSQL: once its listener listens)."""
    for _ in range(250):
        if app.state.slotwise.slots.watch.ready():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the slot cache never came into use")


CHANGES = {"demoted": {"role": "client"}, "deactivated": {"is_active": False}}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_provider_no_longer_so_is_not_listed_offered_or_bookable_at_once(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, clock: Clock, change: str
) -> None:
    admin = await signed_in_admin(client, settings)
    provider, profile = await bookable_provider(client, specialty="Roles")
    handle = str(profile["public_handle"])
    booker = await signed_in(client)
    # Just before: the provider is listed, the worker keeps its slots and its terms.
    kept = await _book(client, booker, profile, "10:00")
    assert kept.status_code == 201, kept.text
    assert (await _book(client, None, profile, "11:00")).status_code == 201
    assert (await _book(client, booker, profile, "12:00", idempotency_key="k1")).status_code == 201
    await _slot_cache_in_use(app)
    assert (await _slots(client, handle)).status_code == 200
    assert len(app.state.slotwise.slots.cache) == 1  # the listing is kept
    assert app.state.slotwise.terms._by_ref  # and so are the provider's terms
    search = await client.get("/providers", params={"specialty": "Roles"})
    assert [p["public_handle"] for p in search.json()["items"]] == [handle]

    response = await client.patch(
        f"/users/{provider.id}", headers=admin.headers, json=CHANGES[change]
    )
    assert response.status_code == 200

    assert (await client.get(f"/providers/{handle}")).status_code == 404
    search = await client.get("/providers", params={"specialty": "Roles"})
    assert search.json()["total"] == 0
    slots = await _slots(client, handle)
    assert slots.status_code == 404
    assert slots.json()["code"] == "provider_not_found"
    for refused in (
        await _book(client, booker, profile, "14:00"),
        await _book(client, None, profile, "15:00"),
        await _book(client, booker, profile, "16:00", idempotency_key="k2"),
    ):
        assert refused.status_code == 404, refused.text
        assert refused.json()["code"] == "provider_not_found"
    # The appointments made stay, as they were; moving one to a new time is a booking.
    appointment_id = kept.json()["id"]
    appointment = await client.get(f"/appointments/{appointment_id}", headers=booker.headers)
    assert appointment.status_code == 200
    assert appointment.json()["status"] == kept.json()["status"]
    moved = await client.post(
        f"/appointments/{appointment_id}/reschedule",
        headers=booker.headers,
        json={"new_start_time": f"{DAY}T13:00:00Z"},
    )
    assert moved.status_code == 404, moved.text
    assert moved.json()["code"] == "provider_not_found"
    cancelled = await client.post(f"/appointments/{appointment_id}/cancel", headers=booker.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"


@pytest.fixture
async def other_worker(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second application on the same database, as another worker process."""
    application = create_app(settings)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c
    await application.state.slotwise.aclose()


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_by_another_worker_refuses_bookings_on_kept_terms(
    client: httpx.AsyncClient,
    other_worker: httpx.AsyncClient,
    settings: Settings,
    clock: Clock,
    change: str,
) -> None:
    admin = await signed_in_admin(client, settings)
    provider, profile = await bookable_provider(client)
    booker = await signed_in(client)
    assert (await _book(client, booker, profile, "10:00")).status_code == 201  # terms kept
    changed = await other_worker.patch(
        f"/users/{provider.id}", headers=admin.headers, json=CHANGES[change]
    )
    assert changed.status_code == 200
    for refused in (
        await _book(client, booker, profile, "14:00"),
        await _book(client, booker, profile, "16:00", idempotency_key="k"),
    ):
        assert refused.status_code == 404, refused.text
        assert refused.json()["code"] == "provider_not_found"
