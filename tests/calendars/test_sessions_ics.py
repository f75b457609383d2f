"""A group session in calendars: its provider's feed and exports show it once (UID
``<session key>@slotwise``) with each booked seat's client as an ATTENDEE, and CANCELLED once
no seat is left; each attendee's own feed and export show their seat alone, with the provider
and them. Parsed back with icalendar."""

from __future__ import annotations

from typing import Any

import httpx
import icalendar

from tests.booking.test_seats import DAY, group_service
from tests.factories import Account, Clock, guest_booking, login, register

BASE = "http://127.0.0.1:8000/api/v1"
NAMES = ["Ada Lovelace", "Bo Diddley", "Cy Twombly"]


async def attendee(client: httpx.AsyncClient, name: str) -> Account:
    """A signed-in client with a name of their own."""
    user = await register(client, full_name=name)
    tokens = await login(client, str(user["email"]))
    return Account(
        str(user["id"]),
        str(user["email"]),
        "",
        tokens["access_token"],
        tokens["refresh_token"],
    )


async def signed_in_class(
    client: httpx.AsyncClient, **profile: object
) -> tuple[Account, dict[str, Any], list[Account], list[dict[str, Any]]]:
    """A class of three seats on DAY at 10:00 UTC, each taken by a signed-in client (the
    first with notes)."""
    owner, provider, service_id = await group_service(client, capacity=3, **profile)
    clients, seats = [], []
    for i, name in enumerate(NAMES):
        who = await attendee(client, name)
        body: dict[str, Any] = {
            "provider_id": provider["id"],
            "service_id": service_id,
            "start_datetime": f"{DAY}T10:00:00Z",
        }
        if i == 0:
            body["notes"] = "Bad knee"
        booked = await client.post("/appointments/", headers=who.headers, json=body)
        assert booked.status_code == 201, booked.text
        clients.append(who)
        seats.append(booked.json())
    return owner, provider, clients, seats


async def feed_path(client: httpx.AsyncClient, who: Account) -> str:
    created = await client.post("/users/me/calendar-feed", headers=who.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["url"]).removeprefix(BASE)


def events(response: httpx.Response) -> list[icalendar.Event]:
    assert response.status_code == 200, response.text
    found: list[icalendar.Event] = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    return found


def attendees(event: icalendar.Event) -> list[str]:
    found = event.get("ATTENDEE", [])
    return [str(a) for a in (found if isinstance(found, list) else [found])]


async def test_the_providers_feed_shows_a_session_once_with_its_attendees(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, provider, clients, seats = await signed_in_class(client, requires_confirmation=False)
    key = seats[0]["seat"]["session_key"]
    alone = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T14:00:00Z")
    )
    assert alone.status_code == 201, alone.text
    path = await feed_path(client, owner)
    everyone = [f"mailto:{who.email}" for who in clients]

    shown = {
        "feed": events(await client.get(path)),
        "export": events(await client.get("/appointments/export-all.ics", headers=owner.headers)),
    }
    for label, found in shown.items():
        assert [str(e["UID"]) for e in found] == [
            f"{key}@slotwise",
            f"{alone.json()['id']}@slotwise",
        ], label
        session = found[0]
        assert attendees(session) == everyone, label
        assert str(session["ORGANIZER"]) == f"mailto:{owner.email}"
        assert str(session["STATUS"]) == "CONFIRMED"
        assert str(session["SUMMARY"]).startswith("Yoga class with")
        assert session.decoded("DTSTART").isoformat() == f"{DAY}T10:00:00+00:00"
        assert session.decoded("DTEND").isoformat() == f"{DAY}T11:00:00+00:00"
        assert "3 of 3 seats" in str(session["DESCRIPTION"])
        assert "Ada Lovelace: Bad knee" in str(session["DESCRIPTION"])
    # One seat's export, to the provider, is its session's event.
    (one,) = events(
        await client.get(f"/appointments/{seats[1]['id']}/export.ics", headers=owner.headers)
    )
    assert (str(one["UID"]), attendees(one)) == (f"{key}@slotwise", everyone)

    # A seat cancelled: it leaves the event, whose SEQUENCE grows.
    before = int(shown["feed"][0]["SEQUENCE"])
    left = await client.post(f"/appointments/{seats[1]['id']}/cancel", headers=clients[1].headers)
    assert left.status_code == 200, left.text
    session = events(await client.get(path))[0]
    assert attendees(session) == [everyone[0], everyone[2]]
    assert int(session["SEQUENCE"]) > before
    assert str(session["STATUS"]) == "CONFIRMED"

    # The whole session cancelled: the event stays, CANCELLED, with no attendee.
    cancelled = await client.post(
        f"/providers/me/sessions/{key}/cancel", headers=owner.headers, json={}
    )
    assert cancelled.status_code == 200, cancelled.text
    found = events(await client.get(path))
    assert [str(e["UID"]) for e in found] == [f"{key}@slotwise", f"{alone.json()['id']}@slotwise"]
    assert str(found[0]["STATUS"]) == "CANCELLED"
    assert attendees(found[0]) == []
    assert int(found[0]["SEQUENCE"]) > int(session["SEQUENCE"])


async def test_a_session_awaiting_confirmation_is_tentative(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, _, _, seats = await signed_in_class(client, requires_confirmation=True)
    found = events(await client.get("/appointments/export-all.ics", headers=owner.headers))
    assert [str(e["STATUS"]) for e in found] == ["TENTATIVE"]
    confirmed = await client.patch(
        f"/appointments/{seats[2]['id']}/status",
        headers=owner.headers,
        json={"status": "confirmed"},
    )
    assert confirmed.status_code == 200, confirmed.text
    found = events(await client.get("/appointments/export-all.ics", headers=owner.headers))
    assert [str(e["STATUS"]) for e in found] == ["CONFIRMED"]
    assert len(attendees(found[0])) == 3


async def test_each_attendee_sees_their_own_seat(client: httpx.AsyncClient, clock: Clock) -> None:
    owner, _, clients, seats = await signed_in_class(client, requires_confirmation=False)
    for who, mine in zip(clients, seats, strict=True):
        for response in (
            await client.get(await feed_path(client, who)),
            await client.get("/appointments/export-all.ics", headers=who.headers),
            await client.get(f"/appointments/{mine['id']}/export.ics", headers=who.headers),
        ):
            (event,) = events(response)
            assert str(event["UID"]) == f"{mine['id']}@slotwise"
            assert str(event["ORGANIZER"]) == f"mailto:{owner.email}"
            assert attendees(event) == [f"mailto:{who.email}"]
