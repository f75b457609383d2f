"""Booking limits: a provider's bookings a day and a week (in its zone), and a client's
active future bookings with it; refused with 409 limit_reached, also under concurrency,
and full days no longer listed."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
from fastapi import FastAPI

from slotwise.booking.models import Appointment
from tests.factories import Account, Clock, bookable_provider, count_rows, guest_booking, signed_in

DAY = "2027-03-03"  # a Wednesday; BOOKING_NOW is Monday 2027-03-01 12:00 UTC


async def book(
    client: httpx.AsyncClient, provider: dict[str, Any], at: str, who: Account | None = None
) -> httpx.Response:
    if who is None:
        return await client.post("/appointments/", json=guest_booking(provider["id"], at))
    body = {"provider_id": provider["id"], "start_datetime": at}
    return await client.post("/appointments/", headers=who.headers, json=body)


def slot_dates(listing: httpx.Response) -> set[str]:
    assert listing.status_code == 200, listing.text
    return {slot["date"] for slot in listing.json()["slots"]}


async def test_limits_are_part_of_the_profile_and_validated(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, provider = await bookable_provider(client)
    assert provider["max_bookings_per_day"] is None
    changed = await client.patch(
        "/providers/me",
        headers=owner.headers,
        json={"max_bookings_per_day": 2, "max_bookings_per_week": 5},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["max_bookings_per_day"] == 2
    assert changed.json()["max_bookings_per_week"] == 5
    for wrong in ({"max_bookings_per_day": 0}, {"max_active_bookings_per_client": -1}):
        refused = await client.patch("/providers/me", headers=owner.headers, json=wrong)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation_error"
    lifted = await client.patch(
        "/providers/me", headers=owner.headers, json={"max_bookings_per_day": None}
    )
    assert lifted.json()["max_bookings_per_day"] is None
    assert lifted.json()["max_bookings_per_week"] == 5


async def test_a_full_day_refuses_bookings_and_leaves_the_listing(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, provider = await bookable_provider(client, max_bookings_per_day=2)
    path = f"/providers/{provider['public_handle']}/slots"
    week = {"from": "2027-03-02", "to": "2027-03-04"}
    assert DAY in slot_dates(await client.get(path, params=week))
    for hour in (9, 10):
        made = await book(client, provider, f"{DAY}T{hour:02d}:00:00Z")
        assert made.status_code == 201, made.text
    refused = await book(client, provider, f"{DAY}T15:00:00Z")
    assert refused.status_code == 409
    assert refused.json()["code"] == "limit_reached"
    assert refused.json()["details"] == {"limit": "per_day", "maximum": 2}
    assert slot_dates(await client.get(path, params=week)) == {"2027-03-02", "2027-03-04"}
    other_day = await book(client, provider, "2027-03-04T09:00:00Z")
    assert other_day.status_code == 201
    # A cancellation opens the day again.
    first = await client.get("/appointments/", headers=owner.headers)
    cancelled = await client.post(
        f"/appointments/{first.json()['items'][0]['id']}/cancel", headers=owner.headers, json={}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert DAY in slot_dates(await client.get(path, params=week))
    assert (await book(client, provider, f"{DAY}T15:00:00Z")).status_code == 201


async def test_the_day_is_the_providers_local_day(client: httpx.AsyncClient, clock: Clock) -> None:
    """In Tokyo (UTC+9) 2027-03-03 09:00 and 2027-03-04 08:00 are one UTC day apart in local
    dates: a limit of 1 a day admits both."""
    _, provider = await bookable_provider(
        client, timezone="Asia/Tokyo", hours=("08:00:00", "18:00:00"), max_bookings_per_day=1
    )
    assert (await book(client, provider, "2027-03-03T00:00:00Z")).status_code == 201  # 09:00
    same_day = await book(client, provider, "2027-03-03T08:00:00Z")  # 17:00, the same day
    assert same_day.json()["code"] == "limit_reached"
    next_day = await book(client, provider, "2027-03-03T23:00:00Z")  # 08:00 on the 4th
    assert next_day.status_code == 201, next_day.text


async def test_a_full_week_refuses_every_day_of_it(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client, max_bookings_per_week=2)
    for at in ("2027-03-02T09:00:00Z", "2027-03-05T09:00:00Z"):
        assert (await book(client, provider, at)).status_code == 201
    refused = await book(client, provider, "2027-03-07T09:00:00Z")  # Sunday, the same week
    assert refused.json()["details"] == {"limit": "per_week", "maximum": 2}
    assert (await book(client, provider, "2027-03-08T09:00:00Z")).status_code == 201  # Monday
    path = f"/providers/{provider['public_handle']}/slots"
    listed = slot_dates(await client.get(path, params={"from": "2027-03-04", "to": "2027-03-09"}))
    assert listed == {"2027-03-08", "2027-03-09"}


async def test_a_client_holds_at_most_the_providers_number_of_future_bookings(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, max_active_bookings_per_client=2)
    regular, other = await signed_in(client), await signed_in(client)
    for at in ("2027-03-02T09:00:00Z", "2027-03-03T09:00:00Z"):
        assert (await book(client, provider, at, regular)).status_code == 201
    refused = await book(client, provider, "2027-03-04T09:00:00Z", regular)
    assert refused.status_code == 409
    assert refused.json()["details"] == {"limit": "per_client", "maximum": 2}
    assert (await book(client, provider, "2027-03-04T09:00:00Z", other)).status_code == 201


async def test_a_client_moving_into_a_full_day_is_refused_and_the_provider_is_not(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, provider = await bookable_provider(client, max_bookings_per_day=1)
    booker = await signed_in(client)
    assert (await book(client, provider, f"{DAY}T09:00:00Z")).status_code == 201
    mine = await book(client, provider, "2027-03-04T09:00:00Z", booker)
    assert mine.status_code == 201
    moved = await client.post(
        f"/appointments/{mine.json()['id']}/reschedule",
        headers=booker.headers,
        json={"new_start_time": f"{DAY}T11:00:00Z"},
    )
    assert moved.status_code == 409
    assert moved.json()["code"] == "limit_reached"
    # Within its own day it moves freely: its own booking is not counted against it.
    within = await client.post(
        f"/appointments/{mine.json()['id']}/reschedule",
        headers=booker.headers,
        json={"new_start_time": "2027-03-04T11:00:00Z"},
    )
    assert within.status_code == 200, within.text
    by_provider = await client.post(
        f"/appointments/{mine.json()['id']}/reschedule",
        headers=owner.headers,
        json={"new_start_time": f"{DAY}T11:00:00Z"},
    )
    assert by_provider.status_code == 200, by_provider.text


async def test_an_idempotent_booking_is_held_to_the_limits(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, max_bookings_per_day=1)
    assert (await book(client, provider, f"{DAY}T09:00:00Z")).status_code == 201
    refused = await client.post(
        "/appointments/",
        headers={"Idempotency-Key": "limited-1"},
        json=guest_booking(provider["id"], f"{DAY}T10:00:00Z"),
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "limit_reached"


async def test_twenty_concurrent_bookings_of_a_day_limited_to_three_make_three(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(
        client, hours=("00:00:00", "00:00:00"), max_bookings_per_day=3
    )
    responses = await asyncio.gather(  # twenty guests, a distinct free hour each
        *(book(client, provider, f"{DAY}T{hour:02d}:00:00Z") for hour in range(20))
    )
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 3, 409: 17}, [r.json() for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"limit_reached"}
    assert await count_rows(app, Appointment, provider_id=uuid.UUID(str(provider["id"]))) == 3
