"""The provider's view of its group sessions, cancelling one, and each attendee's messages
telling of their own seat only."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import icalendar
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.notifications import render
from slotwise.notifications.models import OutboxMessage
from slotwise.webhooks.models import WebhookDelivery
from tests.booking.test_seats import DAY, group_service, seat
from tests.calendars.test_sessions_ics import NAMES, feed_path, signed_in_class
from tests.factories import BOOKING_NOW, Clock, guest_booking, signed_in

ATTENDEES = [
    ("Ada Lovelace", "ada-seat@example.com"),
    ("Bo Diddley", "bo-seat@example.com"),
    ("Cy Twombly", "cy-seat@example.com"),
]


async def _full_class(
    client: httpx.AsyncClient,
) -> tuple[object, dict[str, object], str, list[dict[str, object]]]:
    account, provider, service_id = await group_service(
        client, capacity=3, requires_confirmation=False
    )
    booked = []
    for name, email in ATTENDEES:
        body = seat(provider, service_id, "10:00")
        body["guest_details"] = {"name": name, "email": email}
        response = await client.post("/appointments/", json=body)
        assert response.status_code == 201, response.text
        booked.append(response.json())
    return account, provider, service_id, booked


async def _session_key(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    listed = await client.get(
        "/providers/me/sessions",
        headers=headers,
        params={"from": f"{DAY}T00:00:00Z", "to": f"{DAY}T23:59:00Z"},
    )
    assert listed.status_code == 200, listed.text
    (only,) = listed.json()
    return str(only["session_key"])


async def test_the_provider_sees_a_session_with_its_attendees(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    account, _, service_id, booked = await _full_class(client)
    key = await _session_key(client, account.headers)
    one = await client.get(f"/providers/me/sessions/{key}", headers=account.headers)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["service_id"] == service_id
    assert body["title"] == "Yoga class"
    assert body["start_at"] == f"{DAY}T10:00:00Z"
    assert (body["capacity"], body["seats_taken"]) == (3, 3)
    assert [(a["name"], a["email"], a["status"]) for a in body["attendees"]] == [
        (name, email, "confirmed") for name, email in ATTENDEES
    ]
    assert [a["appointment_id"] for a in body["attendees"]] == [b["id"] for b in booked]


async def test_another_providers_or_an_unknown_session_is_not_found(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    account, _, _, booked = await _full_class(client)
    key = await _session_key(client, account.headers)
    other, _, _ = await group_service(client, capacity=2)
    for who, asked in ((other, key), (account, str(uuid.uuid4())), (account, booked[0]["id"])):
        for response in (
            await client.get(f"/providers/me/sessions/{asked}", headers=who.headers),
            await client.post(
                f"/providers/me/sessions/{asked}/cancel", headers=who.headers, json={}
            ),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "session_not_found"
    customer = await signed_in(client)  # not a provider at all
    refused = await client.get(f"/providers/me/sessions/{key}", headers=customer.headers)
    assert refused.status_code in (403, 404)


async def test_a_session_window_is_checked(client: httpx.AsyncClient, clock: Clock) -> None:
    account, _, _ = await group_service(client, capacity=2)
    for params in (
        {"from": f"{DAY}T10:00:00Z", "to": f"{DAY}T09:00:00Z"},
        {"from": "2027-01-01T00:00:00Z", "to": "2027-06-01T00:00:00Z"},
        {"from": f"{DAY}T10:00:00"},
    ):
        response = await client.get(
            "/providers/me/sessions", headers=account.headers, params=params
        )
        assert response.status_code == 422, response.text


async def test_cancelling_a_session_cancels_every_seat_and_tells_each_attendee(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    account, provider, service_id, booked = await _full_class(client)
    key = await _session_key(client, account.headers)
    cancelled = await client.post(
        f"/providers/me/sessions/{key}/cancel",
        headers=account.headers,
        json={"reason": "The studio is flooded."},
    )
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["seats_taken"] == 0
    assert {a["status"] for a in body["attendees"]} == {"cancelled"}
    for appointment in booked:
        read = await client.get(f"/appointments/{appointment['id']}", headers=account.headers)
        assert read.json()["status"] == "cancelled"
        assert read.json()["cancel_reason"] == "The studio is flooded."
    rows = await _messages(app)
    for _, email in ATTENDEES:
        kinds = [row.kind for row in rows if row.recipient_email == email]
        assert "booking_cancelled" in kinds, kinds
    # Each attendee's reminders are withdrawn.
    assert not [row for row in rows if row.kind == "reminder" and row.status.value == "pending"]
    # Nothing left to cancel: 409; the freed seats can be booked again.
    again = await client.post(
        f"/providers/me/sessions/{key}/cancel", headers=account.headers, json={}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_transition"
    rebook = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    assert rebook.status_code == 201, rebook.text


async def _messages(app: FastAPI) -> list[OutboxMessage]:
    async with app.state.slotwise.db.session(writes=False) as session:
        return list(await session.scalars(select(OutboxMessage)))


async def test_attendees_never_see_each_other(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Every message (and its invitation) addressed to an attendee, through booking,
    reminders and the session's cancellation, names no other attendee."""
    clock.now = BOOKING_NOW - timedelta(days=3)  # the reminders a day before are ahead
    account, _, _, booked = await _full_class(client)
    key = await _session_key(client, account.headers)
    before = await _messages(app)  # with the reminders, which the cancellation withdraws
    await client.post(f"/providers/me/sessions/{key}/cancel", headers=account.headers, json={})
    rows = list({row.id: row for row in before + await _messages(app)}.values())
    kinds_seen: set[str] = set()
    for name, email in ATTENDEES:
        others = [part for other in ATTENDEES if other[1] != email for part in other]
        addressed = [row for row in rows if row.recipient_email == email]
        assert addressed, email
        for row in addressed:
            kinds_seen.add(row.kind)
            rendered = render.email(row, sender="slotwise@example.com").as_string()
            # The whole message: headers, bodies and the attached .ics (decoded).
            texts = [rendered, str(row.context)]
            for part in render.email(row, sender="slotwise@example.com").walk():
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    texts.append(payload.decode("utf-8", "replace"))
            for text in texts:
                for other in others:
                    assert other not in text, (row.kind, email, other)
            assert name in str(row.context)  # their own seat is theirs
    assert {"booking_confirmed", "reminder", "booking_cancelled"} <= kinds_seen
    invitations = [row for row in rows if "invitation" in row.context]
    assert invitations  # the check above read .ics content, not only plain mail
    assert booked


async def test_an_appointment_shows_its_seat_and_nothing_of_the_others(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """``seat`` is ``{session_key, capacity}`` in every answer about a seat (the booking, the
    lists, the guest's page, webhooks), null for a one-to-one booking; no answer an attendee
    gets names another attendee, their booking or how many seats are taken."""
    account, provider, service_id = await group_service(
        client, capacity=3, requires_confirmation=False
    )
    hooked = await client.post(
        "/webhooks",
        headers=account.headers,
        json={"url": "https://93.184.216.34/hook", "event_types": ["booking.created"]},
    )
    assert hooked.status_code == 201, hooked.text
    kim = await signed_in(client)
    mine = await client.post(
        "/appointments/",
        headers=kim.headers,
        json={
            "provider_id": provider["id"],
            "service_id": service_id,
            "start_datetime": f"{DAY}T10:00:00Z",
        },
    )
    assert mine.status_code == 201, mine.text
    others = []
    for name, email in ATTENDEES[:2]:
        body = seat(provider, service_id, "10:00")
        body["guest_details"] = {"name": name, "email": email}
        booked = await client.post("/appointments/", json=body)
        assert booked.status_code == 201, booked.text
        others.append(booked.json())
    key = await _session_key(client, account.headers)
    expected = {"session_key": key, "capacity": 3}
    assert mine.json()["seat"] == expected
    assert all(other["seat"] == expected for other in others)

    # A one-to-one booking: null, in its answer and its reads.
    alone = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T14:00:00Z")
    )
    assert alone.status_code == 201, alone.text
    assert "seat" in alone.json()
    assert alone.json()["seat"] is None
    manage = await client.get(f"/bookings/{alone.json()['manage_token']}")
    assert manage.json()["seat"] is None

    # Everything an attendee reads: their own seat, nothing of the others'.
    ada, bo = others
    seen = {
        "kim's booking": mine,
        "kim's read": await client.get(f"/appointments/{mine.json()['id']}", headers=kim.headers),
        "kim's list": await client.get("/appointments/", headers=kim.headers),
        "kim's me": await client.get("/appointments/me", headers=kim.headers),
        "ada's page": await client.get(f"/bookings/{ada['manage_token']}"),
    }
    kims = {"id": mine.json()["id"], "guest": {"name": "", "email": kim.email}}
    for label, response in seen.items():
        assert response.status_code in (200, 201), (label, response.text)
        assert key in response.text, label
        strangers = [ada, bo] if label.startswith("kim") else [kims, bo]
        for other in strangers:
            for value in (other["id"], other["guest"]["email"], other["guest"]["name"]):
                assert not value or value not in response.text, (label, value)
        for count in ('"seats_taken"', '"attendees"'):
            assert count not in response.text, label
    listed = seen["kim's list"].json()["items"]
    assert [(a["id"], a["seat"]) for a in listed] == [(mine.json()["id"], expected)]

    # The provider's list shows every seat with the same session; webhooks carry it too.
    theirs = await client.get("/appointments/", headers=account.headers)
    by_id = {a["id"]: a["seat"] for a in theirs.json()["items"]}
    assert by_id == {
        mine.json()["id"]: expected,
        **{o["id"]: expected for o in others},
        alone.json()["id"]: None,
    }
    async with app.state.slotwise.db.session(writes=False) as session:
        payloads = [row.payload for row in await session.scalars(select(WebhookDelivery))]
    told = {p["data"]["appointment"]["id"]: p["data"]["appointment"]["seat"] for p in payloads}
    assert told == by_id


async def test_attendees_never_see_each_other_in_calendars(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    """An attendee's feed, export and one seat's export name the provider and them: no other
    attendee, their seat or notes, nor the seats taken; another's seat is 404 to them. Their
    provider's feed has them all (``tests/calendars/test_sessions_ics.py``)."""
    owner, _, clients, seats = await signed_in_class(client, requires_confirmation=False)
    for i, (who, mine) in enumerate(zip(clients, seats, strict=True)):
        others = [
            value
            for j, (other, theirs) in enumerate(zip(clients, seats, strict=True))
            if j != i
            for value in (other.email, NAMES[j], theirs["id"])
        ]
        if i != 0:
            others.append("Bad knee")  # the first attendee's notes
        for response in (
            await client.get(await feed_path(client, who)),
            await client.get("/appointments/export-all.ics", headers=who.headers),
            await client.get(f"/appointments/{mine['id']}/export.ics", headers=who.headers),
        ):
            assert response.status_code == 200, response.text
            icalendar.Calendar.from_ical(response.content)  # a valid calendar
            text = re.sub(r"\r\n[ \t]", "", response.text)  # unfolded (RFC 5545 3.1)
            assert NAMES[i] in text
            assert owner.email in text
            for value in others:
                assert value not in text, (NAMES[i], value)
            assert "seats taken" not in text
        theirs = seats[(i + 1) % len(seats)]["id"]
        refused = await client.get(f"/appointments/{theirs}/export.ics", headers=who.headers)
        assert refused.status_code == 404


def test_openapi_describes_the_session_routes_and_their_errors(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    listed = paths["/api/v1/providers/me/sessions"]["get"]
    assert {"200", "401", "403", "404", "422"} <= set(listed["responses"])
    one = paths["/api/v1/providers/me/sessions/{session_key}"]["get"]
    assert {"200", "401", "403", "404"} <= set(one["responses"])
    assert "session_not_found" in one["description"]
    cancel = paths["/api/v1/providers/me/sessions/{session_key}/cancel"]["post"]
    assert {"200", "401", "403", "404", "409"} <= set(cancel["responses"])
    assert "session_not_found" in cancel["description"]
    assert "invalid_transition" in cancel["description"]
    assert cancel["x-api-key-scope"] == "manage"
