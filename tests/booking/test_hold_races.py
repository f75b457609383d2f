"""Holds against bookings, as races: requests fired together, exactly one winner per slot,
never a 500."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import httpx
from fastapi import FastAPI

from slotwise.booking.models import Appointment
from tests.booking.test_holds import code, hold, served
from tests.factories import Clock, bookable_provider, count_rows, guest_booking

DAY = "2027-03-02"
START = f"{DAY}T10:00:00Z"


async def test_one_hold_and_twenty_bookings_for_one_slot_make_one_winner(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    for _ in range(3):
        _, provider = await bookable_provider(client)
        booking = guest_booking(provider["id"], START)
        responses = await asyncio.gather(
            hold(client, provider["id"], START),
            *(client.post("/appointments/", json=booking) for _ in range(20)),
        )
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: 1, 409: 20}, statuses
        assert {code(r) for r in responses if r.status_code == 409} == {"slot_unavailable"}
    assert await count_rows(app, Appointment) == 3


async def test_a_held_slot_goes_to_its_token_whoever_races_it(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    token = (await hold(client, provider["id"], START)).json()["hold_token"]
    with_token = guest_booking(provider["id"], START, hold_token=token)
    responses = await asyncio.gather(
        *(
            client.post("/appointments/", json=guest_booking(provider["id"], START))
            for _ in range(10)
        ),
        client.post("/appointments/", json=with_token),
        *(hold(client, provider["id"], START) for _ in range(2)),
        *(
            client.post("/appointments/", json=guest_booking(provider["id"], START))
            for _ in range(10)
        ),
    )
    assert responses[10].status_code == 201, responses[10].text
    others = responses[:10] + responses[11:]
    assert {code(r) for r in others} == {"slot_unavailable"}


async def test_one_token_booked_twice_at_once_books_once(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    for hour in ("09", "10", "11"):
        start = f"{DAY}T{hour}:00:00Z"
        token = (await hold(client, provider["id"], start)).json()["hold_token"]
        responses = await asyncio.gather(
            *(
                client.post(
                    "/appointments/", json=guest_booking(provider["id"], start, hold_token=token)
                )
                for _ in range(2)
            )
        )
        assert sorted(r.status_code for r in responses)[0] == 201, [r.text for r in responses]
        # The loser saw the hold and lost it (PostgreSQL: it waited on the lock), or came
        # after (SQLite's writers queue whole): the hold is no more either way.
        assert code(sorted(responses, key=lambda r: r.status_code)[1]) in (
            "hold_expired",
            "hold_not_found",
        )
        clock.now += timedelta(minutes=11)  # the next hold: the address's earlier ones ended
    assert await count_rows(app, Appointment) == 3


async def test_five_holds_at_once_from_one_address_make_two(
    database_url: str, clock: Clock
) -> None:
    async with served(database_url, clock) as (app, client):
        _, provider = await bookable_provider(client)
        responses = await asyncio.gather(
            *(hold(client, provider["id"], f"{DAY}T{hour}:00:00Z") for hour in range(10, 15))
        )
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: 2, 409: 3}, statuses
        assert {code(r) for r in responses if r.status_code == 409} == {"hold_limit_reached"}
        assert await count_rows(app, Appointment, status="held") == 2


async def test_an_expired_token_and_bookers_racing_for_its_slot_make_one_booking(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    token = (await hold(client, provider["id"], START)).json()["hold_token"]
    clock.now += timedelta(minutes=10)
    with_token = guest_booking(provider["id"], START, hold_token=token)
    responses = await asyncio.gather(
        client.post("/appointments/", json=with_token),
        *(
            client.post("/appointments/", json=guest_booking(provider["id"], START))
            for _ in range(10)
        ),
    )
    assert code(responses[0]) in ("hold_expired", "hold_not_found")
    statuses = Counter(r.status_code for r in responses[1:])
    assert statuses == {201: 1, 409: 9}, statuses
    assert await count_rows(app, Appointment) == 1  # the expired hold is gone
