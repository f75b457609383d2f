"""Team bookings: round robin's rule, collective's all-or-nothing, and what follows them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from slotwise.booking.models import Appointment, AppointmentEvent, Status
from slotwise.config import Settings
from slotwise.notifications.models import OutboxMessage
from tests.booking.test_queue import claims_of, state_of
from tests.factories import BOOKING_NOW, Clock, count_rows, guest_booking, signed_in
from tests.teams.conftest import DAY, Crew, book, make_crew


async def _slots(client: httpx.AsyncClient, crew: Crew, service: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(
        f"/teams/{crew.handle}/slots", params={"service": service["id"], "from": DAY}
    )
    assert response.status_code == 200, response.text
    return {s["start_at"][11:16]: s["members"] for s in response.json()["slots"]}


def _handle(crew: Crew, index: int) -> str:
    return str(crew.members[index][1]["public_handle"])


async def _busy(client: httpx.AsyncClient, crew: Crew, index: int, at: str) -> None:
    """The member books of their own (their default session), outside the team."""
    taken = await client.post(
        "/appointments/", json=guest_booking(crew.members[index][1]["id"], f"{DAY}T{at}:00Z")
    )
    assert taken.status_code == 201, taken.text


async def test_round_robin_offers_any_free_member_collective_all(
    client: httpx.AsyncClient, crew: Crew
) -> None:
    await _busy(client, crew, 0, "10:00")
    round_robin = await _slots(client, crew, crew.round_robin)
    collective = await _slots(client, crew, crew.collective)
    hours = [f"{h:02d}:00" for h in range(9, 17)]
    assert list(round_robin) == hours
    assert round_robin["10:00"] == sorted([_handle(crew, 1), _handle(crew, 2)])
    assert round_robin["09:00"] == sorted(_handle(crew, i) for i in range(3))
    assert list(collective) == [h for h in hours if h != "10:00"]
    for index in range(3):  # each member's part is their own listing of their share
        account, profile = crew.members[index]
        shares = await client.get("/providers/me/services", headers=account.headers)
        share = next(s for s in shares.json() if s["name"] == "Meeting round_robin")
        own = await client.get(
            f"/providers/{profile['public_handle']}/slots",
            params={"date": DAY, "service": share["id"]},
        )
        offered = {s["start_at"][11:16] for s in own.json()["slots"]}
        assert offered == {
            at for at, free in round_robin.items() if profile["public_handle"] in free
        }


async def test_round_robin_rule_weights_then_priority(
    client: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    """Fewest bookings per unit of weight first, then the higher priority: with weights
    2, 1, 1 and priorities 3, 2, 1, six bookings go to 0, 1, 2, 0, 0, 1."""
    crew = await make_crew(
        client,
        settings,
        **{
            "0": {"weight": 2, "priority": 3},
            "1": {"priority": 2},
            "2": {"priority": 1},
        },
    )
    given = []
    for hour in range(9, 15):
        booked = await book(client, crew, crew.round_robin, f"{DAY}T{hour:02d}:00:00Z")
        assert booked.status_code == 201, booked.text
        body = booked.json()
        assert body["team_booking_id"] is None
        (assigned,) = body["assigned"]
        (appointment,) = body["appointments"]
        assert appointment["provider_id"] == assigned["provider_id"]
        given.append(assigned["public_handle"])
    assert given == [_handle(crew, i) for i in (0, 1, 2, 0, 0, 1)]


async def test_round_robin_passes_over_a_busy_member(client: httpx.AsyncClient, crew: Crew) -> None:
    first = min(range(3), key=lambda i: _handle(crew, i))  # equal counts, equal priorities
    await _busy(client, crew, first, "11:00")
    booked = await book(client, crew, crew.round_robin, f"{DAY}T11:00:00Z")
    assert booked.json()["assigned"][0]["public_handle"] != _handle(crew, first)
    for index in range(3):
        if index != first:
            await _busy(client, crew, index, "13:00")
    last = await book(client, crew, crew.round_robin, f"{DAY}T13:00:00Z")
    assert last.json()["assigned"][0]["public_handle"] == _handle(crew, first)
    none = await book(
        client,
        crew,
        crew.round_robin,
        f"{DAY}T13:00:00Z",
        guest_details={"name": "B", "email": "b@example.com"},
    )
    assert (none.status_code, none.json()["code"]) == (409, "slot_unavailable")


async def test_refusals_are_a_bookings(client: httpx.AsyncClient, crew: Crew) -> None:
    outside = await book(client, crew, crew.round_robin, f"{DAY}T18:00:00Z")
    assert (outside.status_code, outside.json()["code"]) == (422, "outside_availability")
    naive = await book(client, crew, crew.round_robin, f"{DAY}T10:00:00")
    assert (naive.status_code, naive.json()["code"]) == (422, "offset_required")
    unknown = await book(client, crew, {"id": crew.team["id"]}, f"{DAY}T10:00:00Z")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "team_service_not_found")
    past = await book(client, crew, crew.collective, "2027-02-28T10:00:00Z")
    assert (past.status_code, past.json()["code"]) == (422, "too_soon")
    nobody = await client.post(
        "/teams/nobody-here/appointments",
        json={"service_id": crew.round_robin["id"], "start_datetime": f"{DAY}T10:00:00Z"},
    )
    assert (nobody.status_code, nobody.json()["code"]) == (404, "team_not_found")


async def test_collective_books_every_member_and_mails_the_client_once(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    client_account = await signed_in(client)
    booked = await book(client, crew, crew.collective, f"{DAY}T12:00:00Z", client_account)
    assert booked.status_code == 201, booked.text
    body = booked.json()
    group = body["team_booking_id"]
    assert group is not None
    assert [a["public_handle"] for a in body["assigned"]] == sorted(
        _handle(crew, i) for i in range(3)
    )
    assert {a["provider_id"] for a in body["appointments"]} == {
        str(m[1]["id"]) for m in crew.members
    }
    assert await count_rows(app, Appointment, team_booking_id=uuid.UUID(group)) == 3
    for account, _profile in crew.members:  # each member sees theirs
        theirs = await client.get("/appointments/me", headers=account.headers)
        assert [a["start_at"] for a in theirs.json()["items"]] == [f"{DAY}T12:00:00Z"]
        assert await count_rows(app, OutboxMessage, recipient_email=account.email) == 1
    assert await count_rows(app, OutboxMessage, recipient_email=client_account.email) == 1
    assert "12:00" not in await _slots(client, crew, crew.collective)
    round_robin = await _slots(client, crew, crew.round_robin)
    assert "12:00" not in round_robin  # every member's time is taken


async def test_collective_is_all_or_nothing(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    await _busy(client, crew, 1, "14:00")
    refused = await book(client, crew, crew.collective, f"{DAY}T14:00:00Z")
    assert (refused.status_code, refused.json()["code"]) == (409, "slot_unavailable")
    for index in (0, 2):
        assert await count_rows(app, Appointment, provider_id=_uuid(crew, index)) == 0


def _uuid(crew: Crew, index: int) -> uuid.UUID:
    return uuid.UUID(str(crew.members[index][1]["id"]))


async def test_cancelling_any_part_cancels_the_collective_booking(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    client_account = await signed_in(client)
    for hour, canceller in ((10, "client"), (15, "member")):
        booked = await book(client, crew, crew.collective, f"{DAY}T{hour}:00:00Z", client_account)
        appointments = booked.json()["appointments"]
        if canceller == "client":
            target, headers = appointments[0]["id"], client_account.headers
        else:
            member = next(
                m for m in crew.members if str(m[1]["id"]) == appointments[-1]["provider_id"]
            )
            target, headers = appointments[-1]["id"], member[0].headers
        cancelled = await client.post(
            f"/appointments/{target}/cancel", headers=headers, json={"reason": "Not needed"}
        )
        assert cancelled.status_code == 200, cancelled.text
        group = booked.json()["team_booking_id"]
        assert (
            await count_rows(
                app, Appointment, team_booking_id=uuid.UUID(group), status=Status.CANCELLED
            )
            == 3
        )
        assert f"{hour}:00" in await _slots(client, crew, crew.collective)


async def test_a_round_robin_booking_moves_with_its_member(
    client: httpx.AsyncClient, crew: Crew
) -> None:
    """(A collective one moves whole: test_reschedule.py.)"""
    client_account = await signed_in(client)
    round_robin = await book(client, crew, crew.round_robin, f"{DAY}T12:00:00Z", client_account)
    (appointment,) = round_robin.json()["appointments"]
    moved = await client.post(
        f"/appointments/{appointment['id']}/reschedule",
        headers=client_account.headers,
        json={"new_start_time": f"{DAY}T13:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["provider_id"] == appointment["provider_id"]  # the member stays
    ics = await client.get(
        f"/appointments/{appointment['id']}/export.ics", headers=client_account.headers
    )
    assert ics.status_code == 200
    assert "DTSTART:20270302T130000Z" in ics.text


async def test_a_guest_books_collectively_only_where_no_member_verifies_emails(
    client: httpx.AsyncClient, crew: Crew
) -> None:
    account, _profile = crew.members[1]
    verified = await client.patch(
        "/providers/me", headers=account.headers, json={"verify_guest_email": True}
    )
    assert verified.status_code == 200
    refused = await book(client, crew, crew.collective, f"{DAY}T10:00:00Z")
    assert (refused.status_code, refused.json()["code"]) == (409, "collective_needs_sign_in")
    round_robin = await book(client, crew, crew.round_robin, f"{DAY}T10:00:00Z")
    assert round_robin.status_code == 201


async def test_a_batch_writes_the_cancellations_gathered_before_a_collective_one(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    """One batch cancels two one-to-one bookings, then a row of a collective booking (which
    reads and locks its other rows, so the two gathered before it are written first), then
    another one-to-one booking: every one of them, and every row of the collective booking,
    is cancelled, each with its history."""
    account = await signed_in(client)
    provider = crew.members[0][1]
    singles = []
    for at in ("09:00", "11:00", "13:00"):
        made = await client.post(
            "/appointments/",
            headers=account.headers,
            json={"provider_id": provider["id"], "start_datetime": f"{DAY}T{at}:00Z"},
        )
        assert made.status_code == 201, made.text
        singles.append(uuid.UUID(made.json()["id"]))
    collective = await book(client, crew, crew.collective, f"{DAY}T15:00:00Z", account)
    assert collective.status_code == 201, collective.text
    team_row = uuid.UUID(collective.json()["appointments"][0]["id"])
    writer = state_of(app).bookings
    writer.writers = 1
    claims = claims_of(app, account)
    order = [singles[0], singles[1], team_row, singles[2]]
    found = await asyncio.gather(
        *(
            writer.cancel(claims=claims, appointment_id=aid, reason="Away", now=BOOKING_NOW)
            for aid in order
        )
    )
    await writer.aclose()
    assert [answer.status for answer in found] == [Status.CANCELLED] * 4
    for aid in singles:
        assert await count_rows(app, Appointment, id=aid, status=Status.CANCELLED) == 1
        assert await count_rows(app, AppointmentEvent, appointment_id=aid) == 2
    group = uuid.UUID(collective.json()["team_booking_id"])
    cancelled = await count_rows(app, Appointment, team_booking_id=group, status=Status.CANCELLED)
    assert cancelled == len(crew.members)
