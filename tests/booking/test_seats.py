"""Group sessions: a service with capacity N takes exactly N seats a session, under any
concurrency; the session blocks the provider's time once; limits count sessions."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from slotwise import migrate
from slotwise.booking.models import Appointment
from slotwise.db import make_engine
from tests.factories import Account, Clock, bookable_provider, guest_booking, signed_in

DAY = "2027-03-02"
_keys = itertools.count()


async def group_service(
    client: httpx.AsyncClient, capacity: int, **profile: object
) -> tuple[Account, dict[str, object], str]:
    """A provider open 09:00-17:00 UTC with a one-hour class of ``capacity`` seats on a
    30-minute grid."""
    account, provider = await bookable_provider(client, slot_interval_minutes=30, **profile)
    created = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={
            "name": "Yoga class",
            "duration_minutes": 60,
            "slot_interval_minutes": 30,
            "capacity": capacity,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["capacity"] == capacity
    return account, provider, created.json()["id"]


def seat(
    provider: dict[str, object], service_id: str, at: str, **extra: object
) -> dict[str, object]:
    return guest_booking(provider["id"], f"{DAY}T{at}:00Z", service_id=service_id, **extra)


async def _seats(app: FastAPI) -> list[tuple[object, int, str]]:
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = await session.execute(
            select(Appointment.session_key, Appointment.seat_no, Appointment.status)
        )
        return [(row.session_key, row.seat_no, row.status.value) for row in rows]


async def test_fifty_bookings_for_five_seats_make_five(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, service_id = await group_service(client, capacity=5)

    def attempt(i: int) -> object:
        # Half through the queue (batched together), half alone (an Idempotency-Key).
        headers = {"Idempotency-Key": f"seat-{next(_keys)}"} if i % 2 else {}
        return client.post(
            "/appointments/", json=seat(provider, service_id, "10:00"), headers=headers
        )

    responses = await asyncio.gather(*(attempt(i) for i in range(50)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 5, 409: 45}, statuses
    refusals = [r.json() for r in responses if r.status_code == 409]
    assert {body["code"] for body in refusals} == {"session_full"}
    assert refusals[0]["details"] == {"capacity": 5}
    rows = await _seats(app)
    assert len({key for key, _, _ in rows}) == 1  # one session
    assert sorted(n for _, n, _ in rows) == [1, 2, 3, 4, 5]


async def test_a_session_blocks_the_provider_once(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider, service_id = await group_service(client, capacity=3)
    assert (
        await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    ).status_code == 201
    # Another session of the class, or a one-to-one booking, overlapping it: refused.
    other_session = await client.post("/appointments/", json=seat(provider, service_id, "10:30"))
    assert other_session.status_code == 409
    assert other_session.json()["code"] == "slot_unavailable"
    one_to_one = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert one_to_one.json()["code"] == "slot_unavailable"
    # ... while the session's own seats are still open.
    assert (
        await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    ).status_code == 201
    # Back to back is fine.
    assert (
        await client.post("/appointments/", json=seat(provider, service_id, "11:00"))
    ).status_code == 201


async def test_a_client_takes_one_seat_of_a_session(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, service_id = await group_service(client, capacity=5)
    customer = await signed_in(client)
    body = {
        "provider_id": provider["id"],
        "service_id": service_id,
        "start_datetime": f"{DAY}T10:00:00Z",
    }
    responses = await asyncio.gather(
        *(client.post("/appointments/", json=body, headers=customer.headers) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"client_conflict"}


async def test_cancelling_frees_a_seat(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    account, provider, service_id = await group_service(
        client, capacity=2, requires_confirmation=False
    )
    first = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    second = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    assert (first.status_code, second.status_code) == (201, 201)
    full = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    assert full.json()["code"] == "session_full"
    cancelled = await client.patch(
        f"/appointments/{first.json()['id']}/status",
        headers=account.headers,
        json={"status": "cancelled", "reason": "moved away"},
    )
    assert cancelled.status_code == 200, cancelled.text
    again = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    assert again.status_code == 201, again.text
    taking = sorted(n for _, n, status in await _seats(app) if status != "cancelled")
    assert taking == [1, 2]  # the freed number is taken again


async def test_day_limit_counts_sessions_not_seats(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider, service_id = await group_service(client, capacity=4, max_bookings_per_day=1)
    responses = await asyncio.gather(
        *(client.post("/appointments/", json=seat(provider, service_id, "10:00")) for _ in range(3))
    )
    assert [r.status_code for r in responses] == [201] * 3
    another = await client.post("/appointments/", json=seat(provider, service_id, "14:00"))
    assert another.status_code == 409
    assert another.json()["details"]["limit"] == "per_day"
    # Joining the day's session still counts as no new session.
    assert (
        await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    ).status_code == 201


async def test_a_moved_seat_joins_the_session_at_its_new_time(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    account, provider, service_id = await group_service(client, capacity=2)
    at_ten = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    at_two = await client.post("/appointments/", json=seat(provider, service_id, "14:00"))
    moved = await client.post(
        f"/appointments/{at_ten.json()['id']}/reschedule",
        headers=account.headers,
        json={"new_start_time": f"{DAY}T14:00:00Z", "reason": "merged"},
    )
    assert moved.status_code == 200, moved.text
    rows = {(key, n) for key, n, _ in await _seats(app)}
    assert len({key for key, _ in rows}) == 1
    assert {n for _, n in rows} == {1, 2}
    third = await client.post("/appointments/", json=seat(provider, service_id, "14:00"))
    assert third.json()["code"] == "session_full"
    assert at_two.status_code == 201


async def test_capacity_in_the_service_api(client: httpx.AsyncClient) -> None:
    account, _ = await bookable_provider(client)
    base = {"name": "Class", "duration_minutes": 60}
    plain = await client.post("/providers/me/services", headers=account.headers, json=base)
    assert plain.json()["capacity"] == 1
    for bad in (0, 501, "many"):
        refused = await client.post(
            "/providers/me/services", headers=account.headers, json={**base, "capacity": bad}
        )
        assert refused.status_code == 422, refused.text
    updated = await client.patch(
        f"/providers/me/services/{plain.json()['id']}",
        headers=account.headers,
        json={"capacity": 500},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["capacity"] == 500


async def _listing(
    client: httpx.AsyncClient, provider: dict[str, object], service_id: str | None
) -> dict[str, object]:
    params = {"date": DAY, **({"service": service_id} if service_id else {})}
    response = await client.get(f"/providers/{provider['public_handle']}/slots", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _seats_by_time(listing: dict[str, object]) -> dict[str, int | None]:
    slots = listing["slots"]
    assert isinstance(slots, list)
    return {slot["start_at"][11:16]: slot["seats_left"] for slot in slots}


async def test_listings_show_seats_left_and_hide_full_sessions(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, service_id = await group_service(client, capacity=2)
    before = await _listing(client, provider, service_id)
    assert before["capacity"] == 2
    assert _seats_by_time(before)["10:00"] == 2
    assert _seats_by_time(before)["10:30"] == 2

    assert (
        await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    ).status_code == 201
    one_taken = _seats_by_time(await _listing(client, provider, service_id))
    assert one_taken["10:00"] == 1
    # A new session overlapping it would take the same provider time: not offered.
    assert "09:30" not in one_taken
    assert "10:30" not in one_taken
    assert one_taken["09:00"] == 2
    assert one_taken["11:00"] == 2

    assert (
        await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    ).status_code == 201
    full = _seats_by_time(await _listing(client, provider, service_id))
    assert "10:00" not in full
    assert full["11:00"] == 2

    # One-to-one listings: the session is busy time, and seats_left is null.
    plain = await _listing(client, provider, None)
    assert plain["capacity"] == 1
    one_to_one = _seats_by_time(plain)
    assert "10:00" not in one_to_one
    assert set(one_to_one.values()) == {None}


async def test_a_full_day_still_lists_its_sessions_with_seats(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, service_id = await group_service(client, capacity=3, max_bookings_per_day=1)
    assert (
        await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    ).status_code == 201
    assert _seats_by_time(await _listing(client, provider, service_id)) == {"10:00": 2}


async def _copy_of_seat(app: FastAPI, row: dict[str, Any], **changes: object) -> None:
    """A copy of a seat's row written straight to the database (no lock, no judgment):
    what a writer that skips the application meets."""
    values = {
        **row,
        "id": uuid.uuid4(),
        "client_key": f"other-{uuid.uuid4().hex}@example.com",
        "manage_token_hash": None,
        **changes,
    }
    async with app.state.slotwise.db.transaction(writes=True) as session:
        await session.execute(insert(Appointment.__table__).values(values))


async def test_the_database_bounds_the_seats(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, database_url: str
) -> None:
    _, provider, service_id = await group_service(client, capacity=2)
    assert (
        await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    ).status_code == 201
    async with app.state.slotwise.db.session(writes=False) as session:
        found = (await session.execute(select(Appointment.__table__))).one()
    row = dict(found._mapping)
    with pytest.raises(IntegrityError):  # the seat's number is taken
        await _copy_of_seat(app, row)
    if database_url.startswith("postgresql"):
        with pytest.raises(IntegrityError):  # beyond the capacity
            await _copy_of_seat(app, row, seat_no=3)
        with pytest.raises(IntegrityError):  # another session on the provider's time
            await _copy_of_seat(app, row, session_key=uuid.uuid4())
    await _copy_of_seat(app, row, seat_no=2)  # the session's other seat


async def test_a_service_created_after_a_listing_is_listed(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    """A kept schedule that lacks the service asked for is read again, not refused."""
    account, provider = await bookable_provider(client)
    assert (await _listing(client, provider, None))["slots"]
    created = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Class", "duration_minutes": 60, "capacity": 4},
    )
    listing = await _listing(client, provider, created.json()["id"])
    assert _seats_by_time(listing)["10:00"] == 4


async def test_rolling_back_group_sessions_keeps_one_seat_of_each_session(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, database_url: str
) -> None:
    """Before migration 0014 a time held one appointment: going back keeps each session's
    lowest seat that takes time, even when seat 1 was cancelled."""
    account, provider, service_id = await group_service(
        client, capacity=3, requires_confirmation=False
    )
    booked = [
        await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
        for _ in range(3)
    ]
    assert [r.status_code for r in booked] == [201, 201, 201]
    cancelled = await client.patch(
        f"/appointments/{booked[0].json()['id']}/status",
        headers=account.headers,
        json={"status": "cancelled", "reason": "moved away"},
    )
    assert cancelled.status_code == 200, cancelled.text
    await app.state.slotwise.aclose()

    await asyncio.to_thread(migrate.downgrade, database_url, "0013")

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, status FROM appointments"))
            statuses = {uuid.UUID(str(row.id)): row.status for row in rows}
    finally:
        await engine.dispose()
    ids = [uuid.UUID(r.json()["id"]) for r in booked]
    assert [statuses[i] for i in ids] == ["cancelled", "confirmed", "cancelled"]
    await asyncio.to_thread(migrate.upgrade, database_url, "head")
