"""Holds: a slot kept while a client fills in a form, booked only with its token, free again
by itself when the hold ends (no job), counted toward anti-abuse limits."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.booking.models import Appointment, AppointmentEvent
from slotwise.notifications.models import OutboxMessage
from slotwise.webhooks.models import WebhookDelivery
from tests.conftest import served
from tests.factories import (
    Account,
    Clock,
    bookable_provider,
    count_rows,
    guest_booking,
    signed_in,
)

DAY = "2027-03-02"  # a Tuesday, the day after the test clock's now


async def hold(
    client: httpx.AsyncClient,
    provider_id: object,
    start: str,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> httpx.Response:
    body: dict[str, object] = {"provider_id": provider_id, "start_datetime": start, **extra}
    return await client.post("/holds", json=body, headers=headers or {})


async def starts(client: httpx.AsyncClient, provider: dict[str, Any], day: str = DAY) -> list[str]:
    slots = await client.get(f"/providers/{provider['id']}/slots", params={"date": day})
    assert slots.status_code == 200, slots.text
    return [s["start_at"][11:16] for s in slots.json()["slots"]]


def code(response: httpx.Response) -> str | int:
    return response.json().get("code", response.status_code)


async def test_a_hold_answers_its_token_and_expiry_in_the_providers_zone(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, timezone="America/New_York")
    held = await hold(client, provider["id"], f"{DAY}T10:00:00")  # a wall time in New York
    assert held.status_code == 201, held.text
    body = held.json()
    assert body["start_at"] == f"{DAY}T10:00:00-05:00"
    assert body["end_at"] == f"{DAY}T11:00:00-05:00"
    assert body["timezone"] == "America/New_York"
    assert body["expires_at"] == "2027-03-01T07:10:00-05:00"  # now (12:00 UTC) + 10 minutes
    assert datetime.fromisoformat(body["expires_at"]) == clock.now + timedelta(minutes=10)
    assert len(body["hold_token"]) >= 40
    read = await client.get(f"/holds/{body['hold_token']}")
    assert read.status_code == 200, read.text
    assert read.json() == {k: v for k, v in body.items() if k != "hold_token"}


async def test_only_the_token_books_a_held_slot(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    holder = await signed_in(client)
    assert "10:00" in await starts(client, provider)  # listed, and kept by the slot cache
    held = await hold(client, provider["id"], f"{DAY}T10:00:00Z", holder.headers)
    assert held.status_code == 201, held.text
    token = held.json()["hold_token"]
    assert "10:00" not in await starts(client, provider)  # the kept listing heard of it
    other = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert code(other) == "slot_unavailable"
    assert code(await hold(client, provider["id"], f"{DAY}T10:00:00Z")) == "slot_unavailable"
    # Not even the holder books it without the token.
    plain = {"provider_id": provider["id"], "start_datetime": f"{DAY}T10:00:00Z"}
    mine = await client.post("/appointments/", json=plain, headers=holder.headers)
    assert code(mine) in ("slot_unavailable", "client_conflict")
    # Nothing of it is an appointment yet: no history, no message, no list shows it.
    assert await count_rows(app, AppointmentEvent) == 0
    assert await count_rows(app, OutboxMessage) == 0
    listed = await client.get("/appointments/me", headers=holder.headers)
    assert listed.json()["total"] == 0
    booked = await client.post(
        "/appointments/", json={**plain, "hold_token": token, "notes": "Hi"}, headers=holder.headers
    )
    assert booked.status_code == 201, booked.text
    body = booked.json()
    assert body["status"] == "pending"
    assert body["start_at"] == f"{DAY}T10:00:00Z"
    assert body["hold_until"] is None
    assert body["notes"] == "Hi"
    assert [e["action"] for e in body["history"]] == ["created"]
    assert await count_rows(app, OutboxMessage, kind="booking_received") == 1
    listed = await client.get("/appointments/me", headers=holder.headers)
    assert [a["id"] for a in listed.json()["items"]] == [body["id"]]
    # The hold is spent: its token holds nothing any more, books nothing.
    assert code(await client.get(f"/holds/{token}")) == "hold_not_found"
    again = await client.post(
        "/appointments/", json={**plain, "hold_token": token}, headers=holder.headers
    )
    assert code(again) == "hold_not_found"
    assert await count_rows(app, Appointment) == 1


async def test_a_guest_books_an_anonymous_hold_and_the_webhook_says_created(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    account, provider = await bookable_provider(client, requires_confirmation=False)
    subscribed = await client.post(
        "/webhooks",
        headers=account.headers,
        json={"url": "https://hooks.example.com/x", "event_types": ["booking.created"]},
    )
    assert subscribed.status_code == 201, subscribed.text
    held = await hold(client, provider["id"], f"{DAY}T10:00:00Z")
    assert held.status_code == 201, held.text
    assert await count_rows(app, WebhookDelivery) == 0  # a hold is no event
    token = held.json()["hold_token"]
    booking = guest_booking(provider["id"], f"{DAY}T10:00:00Z", hold_token=token)
    booked = await client.post("/appointments/", json=booking)
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "confirmed"
    assert booked.json()["guest"]["name"] == "Guest"
    assert booked.json()["manage_token"]
    assert await count_rows(app, WebhookDelivery) == 1
    managed = await client.get(f"/bookings/{booked.json()['manage_token']}")
    assert managed.json()["id"] == booked.json()["id"]


async def test_an_expired_hold_frees_the_slot_with_no_job(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    assert "10:00" in await starts(client, provider)
    held = await hold(client, provider["id"], f"{DAY}T10:00:00Z")
    token = held.json()["hold_token"]
    assert "10:00" not in await starts(client, provider)
    clock.now += timedelta(minutes=9, seconds=59)
    assert "10:00" not in await starts(client, provider)
    clock.now += timedelta(seconds=1)
    assert "10:00" in await starts(client, provider)  # free at once: nothing was written
    assert code(await client.get(f"/holds/{token}")) == "hold_not_found"
    late = await client.post(
        "/appointments/",
        json=guest_booking(provider["id"], f"{DAY}T10:00:00Z", hold_token=token),
    )
    assert code(late) == "hold_expired"
    assert late.status_code == 409
    another = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert another.status_code == 201, another.text  # the expired hold released by this write
    gone = await client.post(
        "/appointments/",
        json=guest_booking(provider["id"], f"{DAY}T10:00:00Z", hold_token=token),
    )
    assert code(gone) == "hold_not_found"


@pytest.mark.parametrize("cache_mb", [0, 32], ids=["read-afresh", "kept"])
async def test_listings_skip_a_hold_once_it_ends(
    database_url: str, clock: Clock, cache_mb: int
) -> None:
    """Read afresh (no slot cache) or kept (the listing computed before the hold, told of
    it, and bounded by the hold's end): the slot is offered again the moment the hold ends,
    with nothing written."""
    async with served(database_url, clock, slot_cache_mb=cache_mb) as (_, client):
        _, provider = await bookable_provider(client, timezone="Europe/Berlin")
        day = "2027-03-03"
        assert "10:00" in await starts(client, provider, day)
        held = await hold(client, provider["id"], f"{day}T10:00:00")
        assert held.json()["start_at"] == f"{day}T10:00:00+01:00"
        assert "10:00" not in await starts(client, provider, day)
        clock.now = datetime.fromisoformat(held.json()["expires_at"]) - timedelta(seconds=1)
        assert "10:00" not in await starts(client, provider, day)
        clock.now += timedelta(seconds=1)
        assert "10:00" in await starts(client, provider, day)


async def test_a_released_hold_frees_the_slot_at_once(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    held = await hold(client, provider["id"], f"{DAY}T10:00:00Z")
    token = held.json()["hold_token"]
    assert "10:00" not in await starts(client, provider)
    released = await client.delete(f"/holds/{token}")
    assert released.status_code == 204
    assert "10:00" in await starts(client, provider)
    assert code(await client.delete(f"/holds/{token}")) == "hold_not_found"
    booked = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert booked.status_code == 201, booked.text


async def test_booking_with_a_token_is_for_the_holds_provider_service_and_start(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    _, elsewhere = await bookable_provider(client)
    token = (await hold(client, provider["id"], f"{DAY}T10:00:00Z")).json()["hold_token"]
    later = guest_booking(provider["id"], f"{DAY}T11:00:00Z", hold_token=token)
    refused = await client.post("/appointments/", json=later)
    assert refused.status_code == 422
    assert refused.json()["code"] == "hold_mismatch"
    assert refused.json()["details"] == {"differs": ["start_datetime"]}
    other = guest_booking(elsewhere["id"], f"{DAY}T10:00:00Z", hold_token=token)
    assert (await client.post("/appointments/", json=other)).json()["details"] == {
        "differs": ["provider_id"]
    }
    unknown = guest_booking(provider["id"], f"{DAY}T10:00:00Z", hold_token="x" * 43)
    assert code(await client.post("/appointments/", json=unknown)) == "hold_not_found"
    same = guest_booking(provider["id"], f"{DAY}T10:00:00Z", hold_token=token)
    assert (await client.post("/appointments/", json=same)).status_code == 201


async def test_notice_is_measured_from_when_the_slot_was_held(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(
        client, min_notice_minutes=60, hours=("00:00:00", "23:59:00")
    )
    start = "2027-03-01T13:00:00Z"  # an hour after now: the first slot the notice allows
    token = (await hold(client, provider["id"], start)).json()["hold_token"]
    clock.now += timedelta(minutes=5)
    plain = await client.post("/appointments/", json=guest_booking(provider["id"], start))
    assert code(plain) == "too_soon"  # a booking now is inside the notice
    held = await client.post(
        "/appointments/", json=guest_booking(provider["id"], start, hold_token=token)
    )
    assert held.status_code == 201, held.text


async def test_a_holder_holds_at_most_two_slots_with_a_provider(
    database_url: str, clock: Clock
) -> None:
    async with served(database_url, clock) as (_, client):
        _, provider = await bookable_provider(client)
        _, other = await bookable_provider(client)
        for start in ("09:00", "10:00"):
            assert (await hold(client, provider["id"], f"{DAY}T{start}:00Z")).status_code == 201
        third = await hold(client, provider["id"], f"{DAY}T11:00:00Z")
        assert third.status_code == 409
        assert third.json()["code"] == "hold_limit_reached"
        assert third.json()["details"] == {"max_holds": 2}
        assert (await hold(client, other["id"], f"{DAY}T11:00:00Z")).status_code == 201
        # Signed in, a holder is its account, not the address.
        member = await signed_in(client)
        mine = await hold(client, provider["id"], f"{DAY}T11:00:00Z", member.headers)
        assert mine.status_code == 201, mine.text
        # A hold released or ended no longer counts.
        clock.now += timedelta(minutes=10)
        assert (await hold(client, provider["id"], f"{DAY}T12:00:00Z")).status_code == 201


async def test_holds_are_rate_limited_per_client_address(database_url: str, clock: Clock) -> None:
    async with served(database_url, clock, rate_limit_hold_ip="2/hour") as (_, client):
        _, provider = await bookable_provider(client)
        _, other = await bookable_provider(client)
        assert (await hold(client, provider["id"], f"{DAY}T09:00:00Z")).status_code == 201
        assert (await hold(client, other["id"], f"{DAY}T09:00:00Z")).status_code == 201
        limited = await hold(client, provider["id"], f"{DAY}T10:00:00Z")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0


async def test_a_held_slot_is_in_no_list_and_no_calendar(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    account, provider = await bookable_provider(client)
    holder: Account = await signed_in(client)
    assert (await hold(client, provider["id"], f"{DAY}T10:00:00Z", holder.headers)).is_success
    for who in (account, holder):
        assert (await client.get("/appointments/", headers=who.headers)).json()["total"] == 0
        assert (await client.get("/appointments/me", headers=who.headers)).json()["total"] == 0
        feed = await client.get("/appointments/export-all.ics", headers=who.headers)
        assert feed.status_code == 200, feed.text
        assert "BEGIN:VEVENT" not in feed.text
    upcoming = await client.get("/providers/me/appointments", headers=account.headers)
    assert upcoming.json()["total"] == 0


async def test_a_signed_in_holders_hold_is_their_time(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    _, other = await bookable_provider(client)
    holder = await signed_in(client)
    assert (await hold(client, provider["id"], f"{DAY}T10:00:00Z", holder.headers)).is_success
    overlapping = {"provider_id": other["id"], "start_datetime": f"{DAY}T10:00:00Z"}
    clash = await client.post("/appointments/", json=overlapping, headers=holder.headers)
    assert code(clash) == "client_conflict"
    async with app.state.slotwise.db.session(writes=False) as session:
        row = (await session.scalars(select(Appointment))).one()
    assert row.status == "held"
    assert row.held_by == f"user:{holder.id}"
    assert row.hold_token_hash is not None
    assert len(row.hold_token_hash) == 64


async def test_a_hold_is_no_appointment_to_cancel(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Its holder's cancellation by id, through the booking queue with a booking of the
    same batch, is 404 (the hold is released by DELETE /holds/{token}); the hold stays."""
    account, provider = await bookable_provider(client)
    holder = await signed_in(client)
    assert (await hold(client, provider["id"], f"{DAY}T10:00:00Z", holder.headers)).is_success
    async with app.state.slotwise.db.session(writes=False) as session:
        held = (await session.scalars(select(Appointment))).one()
    booking = {"provider_id": provider["id"], "start_datetime": f"{DAY}T11:00:00Z"}
    cancels = [
        client.post(f"/appointments/{held.id}/cancel", headers=holder.headers),
        client.delete(f"/appointments/{held.id}", headers=holder.headers),
        client.post(f"/appointments/{held.id}/cancel", headers=account.headers),
    ]
    *refused, booked = await asyncio.gather(
        *cancels, client.post("/appointments/", json=booking, headers=holder.headers)
    )
    assert [(r.status_code, code(r)) for r in refused] == [(404, "appointment_not_found")] * 3
    assert booked.status_code == 201, booked.text
    async with app.state.slotwise.db.session(writes=False) as session:
        statuses = sorted(row.status for row in await session.scalars(select(Appointment)))
    assert statuses == ["confirmed", "held"] or statuses == ["held", "pending"]


def test_openapi_describes_the_holds_routes_and_their_errors(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    take = paths["/api/v1/holds"]["post"]
    assert {"201", "404", "409", "422", "429"} <= set(take["responses"])
    assert "hold_limit_reached" in take["description"]
    assert {"200", "404"} <= set(paths["/api/v1/holds/{token}"]["get"]["responses"])
    assert {"204", "404"} <= set(paths["/api/v1/holds/{token}"]["delete"]["responses"])
    booking = paths["/api/v1/appointments/"]["post"]["description"]
    for error in ("404 `hold_not_found`", "409 `hold_expired`", "422 `hold_mismatch`"):
        assert error in booking
    assert "hold_limit_reached" not in booking  # a hold's refusal, never a booking's
