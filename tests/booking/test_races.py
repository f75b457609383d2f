"""Races as races: requests fired together, exactly one winner, never a 500."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import httpx

from tests.factories import Clock, bookable_provider, guest_booking, signed_in

DAY = "2027-03-02"


async def test_fifty_requests_for_one_slot_make_one_booking(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    responses = await asyncio.gather(
        *(
            client.post("/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z"))
            for _ in range(50)
        )
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 49}, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"slot_unavailable"}


async def test_overlapping_lengths_race(client: httpx.AsyncClient, clock: Clock) -> None:
    account, provider = await bookable_provider(client, slot_interval_minutes=15)
    services = []
    for minutes in (30, 60, 90):
        created = await client.post(
            "/providers/me/services",
            headers=account.headers,
            json={
                "name": f"{minutes} min",
                "duration_minutes": minutes,
                "slot_interval_minutes": 15,
            },
        )
        services.append(created.json()["id"])
    # Every pair of these overlaps: 10:00-10:30, 10:15-11:15, 09:45-11:15, 10:00-11:00 ...
    attempts = [
        guest_booking(provider["id"], f"{DAY}T10:00:00Z", service_id=services[0]),
        guest_booking(provider["id"], f"{DAY}T10:15:00Z", service_id=services[1]),
        guest_booking(provider["id"], f"{DAY}T09:45:00Z", service_id=services[2]),
        guest_booking(provider["id"], f"{DAY}T10:00:00Z", service_id=services[1]),
        guest_booking(provider["id"], f"{DAY}T10:00:00Z"),
    ] * 6
    responses = await asyncio.gather(*(client.post("/appointments/", json=a) for a in attempts))
    statuses = Counter(r.status_code for r in responses)
    assert statuses[201] == 1, statuses
    assert statuses[409] == len(attempts) - 1, statuses


async def test_back_to_back_race_all_win(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client)
    hours = [f"{DAY}T{h:02d}:00:00Z" for h in range(9, 17)]
    responses = await asyncio.gather(
        *(client.post("/appointments/", json=guest_booking(provider["id"], h)) for h in hours)
    )
    assert [r.status_code for r in responses] == [201] * len(hours)


async def test_buffers_hold_under_a_race(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(
        client, buffer_before_minutes=15, buffer_after_minutes=15, slot_interval_minutes=15
    )
    # 10:00-11:00 blocks 09:45-11:15; so does every neighbour within 30 minutes of it.
    starts = ["10:00", "10:15", "10:30", "11:00", "09:30", "09:15"]
    responses = await asyncio.gather(
        *(
            client.post("/appointments/", json=guest_booking(provider["id"], f"{DAY}T{s}:00Z"))
            for s in starts * 4
        )
    )
    won = sorted({r.json()["start_at"][11:16] for r in responses if r.status_code == 201})
    assert all(r.status_code in (201, 409) for r in responses)
    # Whatever won, no two winners come within 30 minutes (two 15-minute buffers) of each other.
    minutes = [int(w[:2]) * 60 + int(w[3:]) for w in won]
    assert all(b - a >= 90 for a, b in itertools.pairwise(minutes)), won


async def test_two_overlapping_pendings_cannot_both_be_confirmed(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    account, provider = await bookable_provider(client, slot_interval_minutes=30)
    first = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    second = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:30:00Z")
    )
    assert first.json()["status"] == "pending"
    assert second.status_code == 409  # pending holds its slot, so there is no second pending
    confirms = await asyncio.gather(
        *(
            client.patch(
                f"/appointments/{first.json()['id']}/status",
                headers=account.headers,
                json={"status": "confirmed"},
            )
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in confirms) == [200, 409, 409, 409, 409]


async def test_reschedule_racing_a_new_booking_has_one_winner(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    for _ in range(3):
        _, provider = await bookable_provider(client)
        customer = await signed_in(client)
        booked = await client.post(
            "/appointments/",
            headers=customer.headers,
            json={"provider_id": provider["id"], "start_datetime": f"{DAY}T10:00:00Z"},
        )
        move, grab = await asyncio.gather(
            client.post(
                f"/appointments/{booked.json()['id']}/reschedule",
                headers=customer.headers,
                json={"new_start_time": f"{DAY}T14:00:00Z"},
            ),
            client.post("/appointments/", json=guest_booking(provider["id"], f"{DAY}T14:00:00Z")),
        )
        assert sorted([move.status_code, grab.status_code]) in ([200, 409], [201, 409])
        if move.status_code == 409:
            kept = await client.get(
                f"/appointments/{booked.json()['id']}", headers=customer.headers
            )
            assert kept.json()["start_at"] == f"{DAY}T10:00:00Z"


async def test_one_client_racing_two_providers(client: httpx.AsyncClient, clock: Clock) -> None:
    _, first = await bookable_provider(client)
    _, second = await bookable_provider(client)
    customer = await signed_in(client)
    responses = await asyncio.gather(
        *(
            client.post(
                "/appointments/",
                headers=customer.headers,
                json={"provider_id": p["id"], "start_datetime": f"{DAY}T10:00:00Z"},
            )
            for p in (first, second) * 5
        )
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 9}, statuses
