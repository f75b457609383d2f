"""Waitlist promotion as races: places freed while outsiders book, fired together; each
freed place goes to exactly one waiter, in line order, never to an outsider."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from slotwise.booking import waitlist
from slotwise.booking.models import Appointment
from tests.booking.test_holds import code
from tests.booking.test_seats import group_service, seat
from tests.booking.test_waitlist import START, cancel, join, offers, taken_slot
from tests.factories import Account, Clock, bookable_provider, guest_booking, signed_in

TAKING_TIME = ("pending", "confirmed", "pending_verification", "held")


async def _seats_taken(app: FastAPI) -> Counter[str]:
    """Seats taking time, by whose they are."""
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = await session.execute(
            select(Appointment.client_key).where(Appointment.status.in_(TAKING_TIME))
        )
        return Counter(row.client_key for row in rows)


async def _statuses(
    client: httpx.AsyncClient, entries: list[dict[str, object]], waiters: list[Account]
) -> list[str]:
    found = []
    for entry, waiter in zip(entries, waiters, strict=True):
        read = await client.get(f"/waitlist/{entry['id']}", headers=waiter.headers)
        found.append(read.json()["status"])
    return found


async def test_two_seats_freed_at_once_among_twenty_bookers_go_to_the_first_two_waiters(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, service_id = await group_service(client, capacity=5)
    seats = []
    for _ in range(5):
        taken = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
        assert taken.status_code == 201, taken.text
        seats.append(taken.json())
    waiters = [await signed_in(client) for _ in range(5)]
    entries = []
    for waiter in waiters:
        joined = await join(
            client, provider["id"], START, waiter.headers, mode="book", service_id=service_id
        )
        assert joined.status_code == 201, joined.text
        entries.append(joined.json())
    assert [entry["position"] for entry in entries] == [1, 2, 3, 4, 5]
    responses = await asyncio.gather(
        *(
            client.post("/appointments/", json=seat(provider, service_id, "10:00"))
            for _ in range(10)
        ),
        client.post(f"/bookings/{seats[0]['manage_token']}/cancel", json={}),
        client.post(f"/bookings/{seats[3]['manage_token']}/cancel", json={}),
        *(
            client.post("/appointments/", json=seat(provider, service_id, "10:00"))
            for _ in range(10)
        ),
    )
    cancels = responses[10:12]
    assert [r.status_code for r in cancels] == [200, 200], [r.text for r in cancels]
    bookers = responses[:10] + responses[12:]
    assert {code(r) for r in bookers} == {"session_full"}, [r.text for r in bookers]
    assert await _statuses(client, entries, waiters) == [
        "booked",
        "booked",
        "waiting",
        "waiting",
        "waiting",
    ]
    taken = await _seats_taken(app)
    assert sum(taken.values()) == 5  # still at capacity
    assert taken[waiters[0].email] == taken[waiters[1].email] == 1
    # The two still waiting moved up the line.
    third = await client.get(f"/waitlist/{entries[2]['id']}", headers=waiters[2].headers)
    assert third.json()["position"] == 1


async def test_a_slot_freed_while_bookers_race_goes_to_its_waiter(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    for hour in ("09", "10", "11"):
        start = f"2027-03-02T{hour}:00:00Z"
        _, provider, booking = await taken_slot(client, start=start)
        waiter = await signed_in(client)
        entry = (await join(client, provider["id"], start, waiter.headers, mode="book")).json()
        responses = await asyncio.gather(
            *(
                client.post("/appointments/", json=guest_booking(provider["id"], start))
                for _ in range(10)
            ),
            client.post(f"/bookings/{booking['manage_token']}/cancel", json={}),
            *(
                client.post("/appointments/", json=guest_booking(provider["id"], start))
                for _ in range(10)
            ),
        )
        assert responses[10].status_code == 200, responses[10].text
        bookers = responses[:10] + responses[11:]
        assert {code(r) for r in bookers} == {"slot_unavailable"}, [r.text for r in bookers]
        read = await client.get(f"/waitlist/{entry['id']}", headers=waiter.headers)
        assert read.json()["status"] == "booked"
    async with app.state.slotwise.db.session(writes=False) as session:
        count = await session.scalar(
            select(func.count()).where(Appointment.status.in_(TAKING_TIME))
        )
    assert count == 3  # one booking per slot: each its waiter's


async def test_an_ended_offer_raced_by_a_booker_and_sweepers_goes_to_the_next_waiter_only(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, booking = await taken_slot(client)
    waiters = [await signed_in(client) for _ in range(3)]
    entries = [(await join(client, provider["id"], START, w.headers)).json() for w in waiters]
    await cancel(client, booking)
    token = (await offers(app))[0].context["hold_token"]
    clock.now += timedelta(minutes=31)
    database = app.state.slotwise.db
    late = {"provider_id": provider["id"], "start_datetime": START, "hold_token": token}
    responses = await asyncio.gather(
        client.post("/appointments/", json=guest_booking(provider["id"], START)),
        client.post("/appointments/", json=late, headers=waiters[0].headers),
        waitlist.sweep(database, now=clock.now),
        waitlist.sweep(database, now=clock.now),
        client.post("/appointments/", json=guest_booking(provider["id"], START)),
        return_exceptions=True,
    )
    assert not any(isinstance(r, BaseException) for r in responses), responses
    outsiders = [responses[0], responses[4]]
    assert {code(r) for r in outsiders} == {"slot_unavailable"}  # type: ignore[arg-type]
    assert code(responses[1]) in ("hold_expired", "hold_not_found")  # type: ignore[arg-type]
    assert await _statuses(client, entries, waiters) == ["expired", "offered", "waiting"]
    assert len(await offers(app)) == 2  # one offer each: never two at once for this place
    assert sum((await _seats_taken(app)).values()) == 1


@pytest.mark.parametrize(("mode", "given"), [("book", "booked"), ("offer", "offered")])
async def test_a_lapsed_hold_raced_by_sweepers_and_bookers_goes_to_its_first_waiter_only(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, mode: str, given: str
) -> None:
    """A hold lapses while three wait for its time; three sweepers, five bookers of that
    time and two of other times (whose writes release the lapsed hold too) race: the time
    goes to the first waiter, once, whichever releases it."""
    _, provider = await bookable_provider(client)
    held = await client.post("/holds", json={"provider_id": provider["id"], "start_at": START})
    assert held.status_code == 201, held.text
    waiters = [await signed_in(client) for _ in range(3)]
    entries = [
        (await join(client, provider["id"], START, w.headers, mode=mode)).json() for w in waiters
    ]
    clock.now += timedelta(minutes=11)
    database = app.state.slotwise.db
    others = ("2027-03-02T12:00:00Z", "2027-03-02T13:00:00Z")
    responses = await asyncio.gather(
        *(
            client.post("/appointments/", json=guest_booking(provider["id"], START))
            for _ in range(3)
        ),
        waitlist.sweep(database, now=clock.now),
        client.post("/appointments/", json=guest_booking(provider["id"], others[0])),
        waitlist.sweep(database, now=clock.now),
        client.post("/appointments/", json=guest_booking(provider["id"], others[1])),
        waitlist.sweep(database, now=clock.now),
        *(
            client.post("/appointments/", json=guest_booking(provider["id"], START))
            for _ in range(2)
        ),
        return_exceptions=True,
    )
    assert not any(isinstance(r, BaseException) for r in responses), responses
    bookers = [*responses[:3], *responses[8:]]
    assert {code(r) for r in bookers} == {"slot_unavailable"}  # type: ignore[arg-type]
    elsewhere = [responses[4], responses[6]]
    assert [r.status_code for r in elsewhere] == [201, 201]  # type: ignore[union-attr]
    assert await _statuses(client, entries, waiters) == [given, "waiting", "waiting"]
    async with database.session(writes=False) as session:
        at_start = await session.scalar(
            select(func.count()).where(
                Appointment.status.in_(TAKING_TIME),
                Appointment.start_at == datetime.fromisoformat(START),
            )
        )
    assert at_start == 1
    assert len(await offers(app)) == (1 if mode == "offer" else 0)
