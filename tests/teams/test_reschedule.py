"""Moving a collective team booking: every member's row moves together, or none does."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.booking.models import HOLDING_STATUSES, Appointment
from slotwise.config import Settings
from slotwise.notifications.models import OutboxMessage
from tests.factories import Account, Clock, count_rows, guest_booking, signed_in
from tests.teams.conftest import DAY, Crew, book, make_crew


async def _rows(app: FastAPI, group: str) -> list[tuple[str, datetime, int]]:
    """(provider id, start, sequence) of each member's row of the collective booking."""
    async with app.state.slotwise.db.session(writes=False) as session:
        found = await session.execute(
            select(Appointment.provider_id, Appointment.start_at, Appointment.sequence)
            .where(Appointment.team_booking_id == uuid.UUID(group))
            .order_by(Appointment.provider_id)
        )
        return [(str(provider), start, sequence) for provider, start, sequence in found]


def _at(hour: int) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hour:02d}:00:00+00:00")


async def _booked(client: httpx.AsyncClient, crew: Crew, hour: int, who: Account | None) -> Any:
    booked = await book(client, crew, crew.collective, f"{DAY}T{hour:02d}:00:00Z", who)
    assert booked.status_code == 201, booked.text
    return booked.json()


def _member(crew: Crew, appointment: dict[str, Any]) -> Account:
    return next(m[0] for m in crew.members if str(m[1]["id"]) == appointment["provider_id"])


async def _move(
    client: httpx.AsyncClient, appointment_id: str, hour: int, who: Account
) -> httpx.Response:
    return await client.post(
        f"/appointments/{appointment_id}/reschedule",
        headers=who.headers,
        json={"new_start_time": f"{DAY}T{hour:02d}:00:00Z"},
    )


async def _mailed(app: FastAPI, email: str) -> int:
    return await count_rows(app, OutboxMessage, recipient_email=email, kind="booking_rescheduled")


@pytest.mark.parametrize("size", [2, 3])
async def test_moving_any_part_moves_every_member(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, clock: Clock, size: int
) -> None:
    crew = await make_crew(client, settings, size=size)
    client_account = await signed_in(client)
    booked = await _booked(client, crew, 10, client_account)
    group, appointments = booked["team_booking_id"], booked["appointments"]
    # The client moves the first row; a member moves the last; an admin moves any.
    movers = [
        (appointments[0]["id"], client_account, 12),
        (appointments[-1]["id"], _member(crew, appointments[-1]), 14),
        (appointments[0]["id"], crew.admin, 15),
    ]
    for count, (appointment_id, who, hour) in enumerate(movers, start=1):
        moved = await _move(client, appointment_id, hour, who)
        assert moved.status_code == 200, moved.text
        assert moved.json()["id"] == appointment_id
        assert moved.json()["start_at"] == f"{DAY}T{hour:02d}:00:00Z"
        assert moved.json()["team_booking_id"] == group
        rows = await _rows(app, group)
        assert len(rows) == size
        assert {(start, sequence) for _provider, start, sequence in rows} == {(_at(hour), count)}
        for account, _profile in crew.members:  # each member hears of their own row's move
            assert await _mailed(app, account.email) == count
        assert await _mailed(app, client_account.email) == count  # the client, once a move
    for appointment in appointments:  # each member's calendar event moved, same UID
        ics = await client.get(
            f"/appointments/{appointment['id']}/export.ics", headers=client_account.headers
        )
        assert "DTSTART:20270302T150000Z" in ics.text
        assert "SEQUENCE:3" in ics.text
    slots = await client.get(
        f"/teams/{crew.handle}/slots", params={"service": crew.collective["id"], "from": DAY}
    )
    offered = {s["start_at"][11:16] for s in slots.json()["slots"]}
    assert {"10:00", "12:00", "14:00"} <= offered
    assert "15:00" not in offered


async def test_a_guest_moves_the_booking_by_its_manage_token(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    booked = await _booked(client, crew, 10, None)
    token = booked["appointments"][0]["manage_token"]
    moved = await client.post(  # without an offset: read in the zone of the row acted on
        f"/bookings/{token}/reschedule", json={"new_start_time": f"{DAY}T13:00:00"}
    )
    assert moved.status_code == 200, moved.text
    rows = await _rows(app, booked["team_booking_id"])
    assert {start for _provider, start, _sequence in rows} == {_at(13)}


async def test_one_members_refusal_refuses_the_move_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    client_account = await signed_in(client)
    booked = await _booked(client, crew, 10, client_account)
    group, first = booked["team_booking_id"], booked["appointments"][0]["id"]
    before = await _rows(app, group)
    taken = await client.post(  # the second member books 14:00 of their own
        "/appointments/", json=guest_booking(crew.members[1][1]["id"], f"{DAY}T14:00:00Z")
    )
    assert taken.status_code == 201, taken.text
    refused = await _move(client, first, 14, client_account)
    assert (refused.status_code, refused.json()["code"]) == (409, "slot_unavailable")
    outside = await _move(client, first, 18, client_account)  # after every member's hours
    assert (outside.status_code, outside.json()["code"]) == (422, "outside_availability")
    assert await _rows(app, group) == before
    assert await count_rows(app, OutboxMessage, kind="booking_rescheduled") == 0


async def test_a_client_is_held_to_every_members_cancellation_window(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    """Booked 22 hours ahead: a member whose window is a day closes the move for the client
    (whichever row they act on); that member, or another, still moves it."""
    client_account = await signed_in(client)
    booked = await _booked(client, crew, 10, client_account)
    first = booked["appointments"][0]
    strict = _member(crew, booked["appointments"][-1])  # not the row the client acts on
    window = await client.patch(
        "/providers/me", headers=strict.headers, json={"cancellation_window_minutes": 1440}
    )
    assert window.status_code == 200, window.text
    refused = await _move(client, first["id"], 12, client_account)
    assert (refused.status_code, refused.json()["code"]) == (409, "policy_window_closed")
    assert {start for _p, start, _s in await _rows(app, booked["team_booking_id"])} == {_at(10)}
    moved = await _move(client, first["id"], 12, _member(crew, first))
    assert moved.status_code == 200, moved.text
    assert {start for _p, start, _s in await _rows(app, booked["team_booking_id"])} == {_at(12)}


async def test_another_client_or_provider_gets_404(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    client_account = await signed_in(client)
    booked = await _booked(client, crew, 10, client_account)
    stranger = await signed_in(client)
    other_provider = await signed_in(client, "provider")
    for who in (stranger, other_provider):
        for appointment in booked["appointments"]:
            moved = await _move(client, appointment["id"], 12, who)
            assert (moved.status_code, moved.json()["code"]) == (404, "appointment_not_found")
    rows = await _rows(app, booked["team_booking_id"])
    assert {start for _provider, start, _sequence in rows} == {_at(10)}


async def _taking_time(app: FastAPI) -> list[tuple[str, datetime, uuid.UUID | None]]:
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = await session.execute(
            select(Appointment.provider_id, Appointment.start_at, Appointment.team_booking_id)
            .where(Appointment.status.in_(HOLDING_STATUSES))
            .order_by(Appointment.provider_id, Appointment.start_at)
        )
        return [(str(provider), start, group) for provider, start, group in rows]


def _no_double_booking(taken: list[tuple[str, datetime, uuid.UUID | None]]) -> None:
    assert len({(provider, start) for provider, start, _group in taken}) == len(taken)


async def test_two_moves_raced_leave_the_booking_whole(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    client_account = await signed_in(client)
    booked = await _booked(client, crew, 10, client_account)
    first = booked["appointments"][0]["id"]
    responses = await asyncio.gather(
        *(_move(client, first, hour, client_account) for hour in (12, 13, 14, 15))
    )
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    rows = await _rows(app, booked["team_booking_id"])
    (start,) = {start for _provider, start, _sequence in rows}  # every member at one time
    assert start in {_at(hour) for hour in (12, 13, 14, 15)}
    assert {sequence for _provider, _start, sequence in rows} == {4}  # each move, in turn
    _no_double_booking(await _taking_time(app))


async def test_a_move_raced_by_a_members_own_bookings_is_all_or_nothing(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    client_account = await signed_in(client)
    booked = await _booked(client, crew, 10, client_account)
    group, first = booked["team_booking_id"], booked["appointments"][0]["id"]
    member = crew.members[1][1]
    at = f"{DAY}T14:00:00Z"
    direct = [client.post("/appointments/", json=guest_booking(member["id"], at)) for _ in range(4)]
    calls = [_move(client, first, 14, client_account), *direct]
    calls[0], calls[2] = calls[2], calls[0]  # the move among the bookings, not first
    responses = await asyncio.gather(*calls)
    assert Counter(r.status_code for r in responses) == {409: 4, 200: 1} or Counter(
        r.status_code for r in responses
    ) == {409: 4, 201: 1}, [r.text for r in responses]
    taken = await _taking_time(app)
    _no_double_booking(taken)
    starts = {start for _provider, start, _sequence in await _rows(app, group)}
    moved = any(r.status_code == 200 for r in responses)
    assert starts == {_at(14) if moved else _at(10)}
    at_14 = [(provider, g) for provider, start, g in taken if start == _at(14)]
    if moved:
        assert sorted(at_14) == sorted((str(m[1]["id"]), uuid.UUID(group)) for m in crew.members)
    else:
        assert at_14 == [(str(member["id"]), None)]


async def test_moves_raced_through_different_parts_apply_in_turn(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    client_account = await signed_in(client)
    booked = await _booked(client, crew, 10, client_account)
    appointments = booked["appointments"]
    for _round in range(3):
        responses = await asyncio.gather(
            _move(client, appointments[0]["id"], 12, client_account),
            _move(client, appointments[-1]["id"], 13, _member(crew, appointments[-1])),
            _move(client, appointments[1]["id"], 14, _member(crew, appointments[1])),
        )
        assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    rows = await _rows(app, booked["team_booking_id"])
    assert len({start for _provider, start, _sequence in rows}) == 1
    assert {sequence for _provider, _start, sequence in rows} == {9}
    _no_double_booking(await _taking_time(app))


async def test_a_move_raced_by_a_cancellation_of_another_part(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    """Either the move then the cancellation, or the cancellation then a refused move: the
    booking stays whole (every row at one time, all cancelled), never a 503."""
    client_account = await signed_in(client)
    for hour in (9, 11):
        booked = await _booked(client, crew, hour, client_account)
        first, last = booked["appointments"][0], booked["appointments"][-1]
        moved, cancelled = await asyncio.gather(
            _move(client, first["id"], hour + 5, client_account),
            client.post(
                f"/appointments/{last['id']}/cancel",
                headers=_member(crew, last).headers,
                json={"reason": "Away"},
            ),
        )
        assert cancelled.status_code == 200, cancelled.text
        assert (moved.status_code, moved.json().get("code")) in {
            (200, None),
            (409, "invalid_transition"),
        }, moved.text
        group = uuid.UUID(booked["team_booking_id"])
        assert await count_rows(app, Appointment, team_booking_id=group) == 3
        rows = await _rows(app, booked["team_booking_id"])
        assert len({start for _provider, start, _sequence in rows}) == 1
    assert [t for t in await _taking_time(app) if t[2] is not None] == []


async def test_a_new_end_without_offset_is_read_as_the_new_start(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    """Members in two zones (Paris, UTC): an offset-less start and end are both read in
    the zone of the row acted on, one hour for every member, not a wrong duration."""
    paris = crew.members[0][0]
    zoned = await client.patch(
        "/providers/me", headers=paris.headers, json={"timezone": "Europe/Paris"}
    )
    assert zoned.status_code == 200, zoned.text
    client_account = await signed_in(client)
    booked = await _booked(client, crew, 10, client_account)
    (acted_on,) = (one for one in booked["appointments"] if _member(crew, one) is paris)
    moved = await client.post(
        f"/appointments/{acted_on['id']}/reschedule",
        headers=client_account.headers,
        json={"new_start_time": f"{DAY}T13:00:00", "new_end_time": f"{DAY}T14:00:00"},
    )
    assert moved.status_code == 200, moved.text
    rows = await _rows(app, booked["team_booking_id"])
    assert {start for _provider, start, _sequence in rows} == {_at(12)}  # 13:00 in Paris


async def test_a_member_is_held_to_another_members_notice_as_a_client_is(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    """The second member asks 3 days' notice (after the booking was made): the client's
    move is too soon, and so is the first member's, which moves the second member's row;
    the second member (its own row's provider; the first's row asks no notice) and an
    admin move it."""
    client_account = await signed_in(client)
    booked = await _booked(client, crew, 10, client_account)
    first, second = crew.members[0][0], crew.members[1][0]
    first_row, second_row = (
        next(one for one in booked["appointments"] if _member(crew, one) is member)
        for member in (first, second)
    )
    notice = await client.patch(
        "/providers/me", headers=second.headers, json={"min_notice_minutes": 3 * 24 * 60}
    )
    assert notice.status_code == 200, notice.text
    for who in (client_account, first):
        refused = await _move(client, first_row["id"], 12, who)
        assert (refused.status_code, refused.json().get("code")) == (422, "too_soon"), refused.text
    assert {start for _p, start, _s in await _rows(app, booked["team_booking_id"])} == {_at(10)}
    for hour, row, who in ((12, second_row, second), (13, first_row, crew.admin)):
        moved = await _move(client, row["id"], hour, who)
        assert moved.status_code == 200, moved.text
        rows = await _rows(app, booked["team_booking_id"])
        assert {start for _p, start, _s in rows} == {_at(hour)}
