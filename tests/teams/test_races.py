"""Team bookings raced: round robin never gives one member twice, collective is whole."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from slotwise.booking.models import HOLDING_STATUSES, Appointment
from slotwise.config import Settings
from tests.factories import Clock, guest_booking
from tests.teams.conftest import DAY, Crew, make_crew


def _guest(n: int) -> dict[str, str]:
    return {"name": f"Racer {n}", "email": f"racer-{n}@example.com"}


async def _race(
    client: httpx.AsyncClient, crew: Crew, service: dict[str, str], at: str, count: int
) -> list[httpx.Response]:
    return await asyncio.gather(
        *(
            client.post(
                f"/teams/{crew.handle}/appointments",
                json={
                    "service_id": service["id"],
                    "start_datetime": at,
                    "guest_details": _guest(n),
                },
            )
            for n in range(count)
        )
    )


async def _taking_time(app: FastAPI) -> list[tuple[str, object]]:
    """(provider id, team booking id) of every row that takes time."""
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = await session.execute(
            select(Appointment.provider_id, Appointment.team_booking_id).where(
                Appointment.status.in_(HOLDING_STATUSES)
            )
        )
        return [(str(provider), group) for provider, group in rows]


async def test_two_bookings_of_one_time_get_both_members(
    client: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    crew = await make_crew(client, settings, size=2)
    responses = await _race(client, crew, crew.round_robin, f"{DAY}T10:00:00Z", 2)
    assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
    given = {r.json()["assigned"][0]["provider_id"] for r in responses}
    assert given == {str(m[1]["id"]) for m in crew.members}


async def test_many_bookings_of_one_time_take_each_member_once(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    responses = await _race(client, crew, crew.round_robin, f"{DAY}T11:00:00Z", 12)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 3, 409: 9}, [r.text for r in responses if r.status_code != 201]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"slot_unavailable"}
    given = [r.json()["assigned"][0]["provider_id"] for r in responses if r.status_code == 201]
    assert sorted(given) == sorted(str(m[1]["id"]) for m in crew.members)
    taken = await _taking_time(app)
    assert Counter(provider for provider, _group in taken) == Counter(given)


async def test_collective_bookings_raced_make_one_whole_booking(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    responses = await _race(client, crew, crew.collective, f"{DAY}T12:00:00Z", 8)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 7}, [r.text for r in responses if r.status_code != 201]
    (won,) = [r.json() for r in responses if r.status_code == 201]
    taken = await _taking_time(app)
    assert sorted(taken) == sorted((str(m[1]["id"]), _id(won)) for m in crew.members)


def _id(won: dict[str, object]) -> uuid.UUID:
    return uuid.UUID(str(won["team_booking_id"]))


async def test_collective_raced_by_a_members_own_bookings_is_all_or_nothing(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    at = f"{DAY}T13:00:00Z"
    member = crew.members[1][1]
    collective = [
        client.post(
            f"/teams/{crew.handle}/appointments",
            json={
                "service_id": crew.collective["id"],
                "start_datetime": at,
                "guest_details": _guest(n),
            },
        )
        for n in range(4)
    ]
    direct = [
        client.post("/appointments/", json=guest_booking(member["id"], at, _guest(10 + n)["email"]))
        for n in range(4)
    ]
    mixed = [call for pair in zip(collective, direct, strict=True) for call in pair]
    responses = await asyncio.gather(*mixed)
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 7}
    taken = await _taking_time(app)
    groups = Counter(group for _provider, group in taken)
    if None in groups:  # the member's own booking won: no part of a collective one exists
        assert taken == [(str(member["id"]), None)]
    else:
        assert list(groups.values()) == [3]
    async with app.state.slotwise.db.session(writes=False) as session:
        written = await session.scalar(select(func.count()).select_from(Appointment))
    assert written == len(taken)  # nothing half-written, nothing left over
