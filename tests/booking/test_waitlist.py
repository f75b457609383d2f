"""The waitlist: joining a full slot or session (and each refusal), reading and leaving,
places in line, and the hand-over of a freed place to the first in line: booked for them,
or held and offered by email, passing to the next when the offer ends."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.booking import waitlist
from slotwise.booking.models import Appointment, WaitlistEntry
from slotwise.config import Settings
from slotwise.notifications.models import OutboxMessage
from slotwise.webhooks.models import WebhookDelivery
from tests.booking.test_holds import code, served, starts
from tests.booking.test_seats import group_service, seat
from tests.factories import (
    Account,
    Clock,
    bookable_provider,
    count_rows,
    guest_booking,
    signed_in,
    signed_in_admin,
    unique_email,
)

DAY = "2027-03-02"  # a Tuesday, the day after the test clock's now
START = f"{DAY}T10:00:00Z"


async def join(
    client: httpx.AsyncClient,
    provider_id: object,
    start: str = START,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> httpx.Response:
    body: dict[str, object] = {"provider_id": provider_id, "start_datetime": start, **extra}
    return await client.post("/waitlist", json=body, headers=headers or {})


def as_guest(email: str | None = None) -> dict[str, object]:
    return {"guest_details": {"name": "Waiting Guest", "email": email or unique_email("wait")}}


async def taken_slot(
    client: httpx.AsyncClient, start: str = START, **profile: object
) -> tuple[Account, dict[str, Any], dict[str, Any]]:
    """A provider whose ``start`` is booked by a guest: (provider account, provider, booking)."""
    account, provider = await bookable_provider(client, **profile)
    booked = await client.post("/appointments/", json=guest_booking(provider["id"], start))
    assert booked.status_code == 201, booked.text
    return account, provider, booked.json()


async def cancel(client: httpx.AsyncClient, booking: dict[str, Any]) -> None:
    response = await client.post(f"/bookings/{booking['manage_token']}/cancel", json={})
    assert response.status_code == 200, response.text


async def entry(app: FastAPI, entry_id: object) -> WaitlistEntry:
    async with app.state.slotwise.db.session(writes=False) as session:
        found = await session.get(WaitlistEntry, entry_id)
        assert found is not None
        return found


async def offers(app: FastAPI) -> list[OutboxMessage]:
    """The offers mailed, oldest first."""
    async with app.state.slotwise.db.session(writes=False) as session:
        found = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "waitlist_offer")
            .order_by(OutboxMessage.created_at)
        )
        return list(found)


async def active(app: FastAPI) -> list[tuple[str, str, str]]:
    """Every appointment that takes time: (start, status, client key)."""
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = await session.execute(
            select(Appointment.start_at, Appointment.status, Appointment.client_key).where(
                Appointment.status.in_(["pending", "confirmed", "pending_verification", "held"])
            )
        )
        return [(r.start_at.isoformat(), r.status.value, r.client_key) for r in rows]


# -- joining --------------------------------------------------------------------------------


async def test_joining_a_taken_slot_answers_the_place_in_line(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, timezone="America/New_York")
    start = f"{DAY}T10:00:00-05:00"
    taken = await client.post("/appointments/", json=guest_booking(provider["id"], start))
    assert taken.status_code == 201, taken.text
    first = await signed_in(client)
    joined = await join(client, provider["id"], start, first.headers, mode="book")
    assert joined.status_code == 201, joined.text
    body = joined.json()
    assert body["position"] == 1
    assert body["status"] == "waiting"
    assert body["mode"] == "book"
    assert body["start_at"] == start
    assert body["timezone"] == "America/New_York"
    assert body["manage_token"] is None  # signed in: read it signed in
    guest = await join(client, provider["id"], start, **as_guest())
    assert guest.status_code == 201, guest.text
    assert guest.json()["position"] == 2
    assert guest.json()["mode"] == "offer"  # the default
    token = guest.json()["manage_token"]
    assert len(token) >= 40
    read = await client.get(f"/waitlist/{body['id']}", headers=first.headers)
    assert read.status_code == 200, read.text
    assert read.json() == {k: v for k, v in body.items() if k != "manage_token"}
    by_token = await client.get(f"/waitlist/by-token/{token}")
    assert by_token.status_code == 200, by_token.text
    assert by_token.json()["position"] == 2
    # Once the first leaves, the guest is next.
    left = await client.delete(f"/waitlist/{body['id']}", headers=first.headers)
    assert left.status_code == 204, left.text
    assert (await client.get(f"/waitlist/by-token/{token}")).json()["position"] == 1
    gone = await client.get(f"/waitlist/{body['id']}", headers=first.headers)
    assert gone.json()["status"] == "left"
    assert gone.json()["position"] is None
    assert code(await client.delete(f"/waitlist/{body['id']}", headers=first.headers)) == (
        "invalid_transition"
    )
    assert (await client.delete(f"/waitlist/by-token/{token}")).status_code == 204


async def test_each_refusal_to_join(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider, _ = await taken_slot(client)
    me = await signed_in(client)
    # A free time: book it instead.
    free = await join(client, provider["id"], f"{DAY}T11:00:00Z", me.headers)
    assert free.status_code == 409
    assert code(free) == "slot_available"
    assert (await join(client, provider["id"], START, me.headers)).status_code == 201
    again = await join(client, provider["id"], START, me.headers, mode="book")
    assert again.status_code == 409
    assert code(again) == "already_waiting"
    # The booking's refusals: a time the provider does not offer, too soon, no account nor guest.
    assert code(await join(client, provider["id"], f"{DAY}T20:00:00Z", me.headers)) == (
        "outside_availability"
    )
    assert code(await join(client, provider["id"], "2027-03-01T09:00:00Z", me.headers)) == (
        "too_soon"
    )
    assert code(await join(client, provider["id"])) == "guest_details_required"
    assert code(await join(client, provider["id"], START, me.headers, **as_guest())) == (
        "guest_details_not_allowed"
    )


async def test_a_client_waits_in_at_most_five_lines_of_one_provider(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    me = await signed_in(client)
    for hour in range(10, 16):
        booked = await client.post(
            "/appointments/", json=guest_booking(provider["id"], f"{DAY}T{hour}:00:00Z")
        )
        assert booked.status_code == 201, booked.text
    ids = []
    for hour in range(10, 15):
        joined = await join(client, provider["id"], f"{DAY}T{hour}:00:00Z", me.headers)
        assert joined.status_code == 201, joined.text
        ids.append(joined.json()["id"])
    sixth = await join(client, provider["id"], f"{DAY}T15:00:00Z", me.headers)
    assert sixth.status_code == 409
    assert sixth.json()["code"] == "waitlist_limit_reached"
    assert sixth.json()["details"] == {"max_entries": 5}
    # Leaving one makes room.
    assert (await client.delete(f"/waitlist/{ids[0]}", headers=me.headers)).status_code == 204
    sixth = await join(client, provider["id"], f"{DAY}T15:00:00Z", me.headers)
    assert sixth.status_code == 201, sixth.text
    # A client has no waitlist of their own to see.
    assert (await client.get("/providers/me/waitlist", headers=me.headers)).status_code == 403


async def test_another_clients_entry_is_not_found(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider, _ = await taken_slot(client)
    me, other = await signed_in(client), await signed_in(client)
    mine = (await join(client, provider["id"], START, me.headers)).json()
    for response in (
        await client.get(f"/waitlist/{mine['id']}", headers=other.headers),
        await client.delete(f"/waitlist/{mine['id']}", headers=other.headers),
        await client.get(f"/waitlist/by-token/{'x' * 43}"),
    ):
        assert response.status_code == 404
        assert code(response) == "waitlist_entry_not_found"
    assert (await client.get(f"/waitlist/{mine['id']}")).status_code == 401


async def test_guests_joining_are_rate_limited_per_address(database_url: str, clock: Clock) -> None:
    async with served(database_url, clock, rate_limit_waitlist_ip="2/hour") as (_, client):
        _, provider, _ = await taken_slot(client)
        answers = [(await join(client, provider["id"], **as_guest())).status_code for _ in range(3)]
        assert answers == [201, 201, 429]


async def test_the_provider_sees_who_waits(client: httpx.AsyncClient, clock: Clock) -> None:
    account, provider, _ = await taken_slot(client)
    me = await signed_in(client)
    await join(client, provider["id"], START, me.headers)
    guest_email = unique_email("wait")
    await join(client, provider["id"], **as_guest(guest_email))
    listed = await client.get("/providers/me/waitlist", headers=account.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(i["email"], i["position"]) for i in items] == [(me.email, 1), (guest_email, 2)]
    assert listed.json()["total"] == 2


# -- the hand-over --------------------------------------------------------------------------


async def test_a_cancelled_slot_is_booked_for_the_first_waiter(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    account, provider, booking = await taken_slot(client)
    subscribed = await client.post(
        "/webhooks",
        headers=account.headers,
        json={"url": "https://hooks.example.com/in", "event_types": ["booking.created"]},
    )
    assert subscribed.status_code == 201, subscribed.text
    first, second = await signed_in(client), await signed_in(client)
    one = (await join(client, provider["id"], START, first.headers, mode="book")).json()
    two = (await join(client, provider["id"], START, second.headers, mode="book")).json()
    assert "10:00" not in await starts(client, provider)  # kept by the slot cache
    await cancel(client, booking)
    # Never free to anyone else: the kept listing heard of the cancellation and the booking.
    assert "10:00" not in await starts(client, provider)
    got = (await client.get(f"/waitlist/{one['id']}", headers=first.headers)).json()
    assert got["status"] == "booked"
    assert got["position"] is None
    mine = await client.get(f"/appointments/{got['appointment_id']}", headers=first.headers)
    assert mine.status_code == 200, mine.text
    assert mine.json()["start_at"] == START
    assert mine.json()["status"] == "pending"
    # The waiter's booking is a booking like any: messages, and booking.created.
    assert await count_rows(app, OutboxMessage, kind="booking_received") == 2
    assert await count_rows(app, WebhookDelivery, event_type="booking.created") == 1
    still = (await client.get(f"/waitlist/{two['id']}", headers=second.headers)).json()
    assert (still["status"], still["position"]) == ("waiting", 1)
    outsider = await client.post("/appointments/", json=guest_booking(provider["id"], START))
    assert code(outsider) == "slot_unavailable"


async def test_a_waiter_with_a_conflict_is_skipped_for_the_next(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, booking = await taken_slot(client)
    _, elsewhere = await bookable_provider(client)
    busy, free = await signed_in(client), await signed_in(client)
    one = (await join(client, provider["id"], START, busy.headers, mode="book")).json()
    two = (await join(client, provider["id"], START, free.headers, mode="book")).json()
    # The first waiter books the same hour elsewhere meanwhile.
    taken = await client.post(
        "/appointments/",
        json={"provider_id": elsewhere["id"], "start_datetime": START},
        headers=busy.headers,
    )
    assert taken.status_code == 201, taken.text
    await cancel(client, booking)
    skipped = (await client.get(f"/waitlist/{one['id']}", headers=busy.headers)).json()
    assert skipped["status"] == "skipped"
    got = (await client.get(f"/waitlist/{two['id']}", headers=free.headers)).json()
    assert got["status"] == "booked"


async def test_a_suspended_waiter_is_skipped_for_the_next(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    """A waiter suspended (or deactivated) since joining could not book the time
    themselves: the place goes to the next in line, and nothing is booked in their name."""
    _, provider, booking = await taken_slot(client)
    suspended, next_in_line = await signed_in(client), await signed_in(client)
    one = (await join(client, provider["id"], START, suspended.headers, mode="book")).json()
    two = (await join(client, provider["id"], START, next_in_line.headers, mode="book")).json()
    admin = await signed_in_admin(client, settings)
    blocked = await client.patch(
        f"/users/{suspended.id}", headers=admin.headers, json={"is_blocked": True}
    )
    assert blocked.status_code == 200, blocked.text
    await cancel(client, booking)
    skipped = await entry(app, uuid.UUID(one["id"]))
    assert (skipped.status, skipped.reason) == ("skipped", "client_blocked")
    assert skipped.appointment_id is None
    got = (await client.get(f"/waitlist/{two['id']}", headers=next_in_line.headers)).json()
    assert got["status"] == "booked"


async def test_a_rescheduled_and_a_declined_booking_free_their_time_for_waiters(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    account, provider, booking = await taken_slot(client)
    waiter = await signed_in(client)
    one = (await join(client, provider["id"], START, waiter.headers, mode="book")).json()
    moved = await client.post(
        f"/bookings/{booking['manage_token']}/reschedule",
        json={"new_start_time": f"{DAY}T14:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    got = (await client.get(f"/waitlist/{one['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked"
    # The provider declines the booking at 14:00: its waiter gets it.
    other = await signed_in(client)
    two = (
        await join(client, provider["id"], f"{DAY}T14:00:00Z", other.headers, mode="book")
    ).json()
    declined = await client.patch(
        f"/appointments/{booking['id']}/status",
        headers=account.headers,
        json={"status": "declined"},
    )
    assert declined.status_code == 200, declined.text
    got = (await client.get(f"/waitlist/{two['id']}", headers=other.headers)).json()
    assert got["status"] == "booked"


async def test_a_freed_seat_goes_to_the_first_waiter_of_its_session(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, service_id = await group_service(client, capacity=2)
    seats = []
    for _ in range(2):
        taken = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
        assert taken.status_code == 201, taken.text
        seats.append(taken.json())
    full = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    assert code(full) == "session_full"
    waiter = await signed_in(client)
    one = (
        await join(
            client, provider["id"], START, waiter.headers, mode="book", service_id=service_id
        )
    ).json()
    assert one["position"] == 1
    await cancel(client, seats[0])
    got = (await client.get(f"/waitlist/{one['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked"
    again = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    assert code(again) == "session_full"


async def test_a_session_its_provider_cancels_ends_its_line(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The class is off: its waiters are not booked into it (seat by seat, as its seats
    are cancelled), their entries end (``session_cancelled``), and a seat held while a form
    is filled is let go, so its token books nothing."""
    account, provider, service_id = await group_service(client, capacity=2)
    taken = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    assert taken.status_code == 201, taken.text
    held = await client.post(
        "/holds",
        json={"provider_id": provider["id"], "start_datetime": START, "service_id": service_id},
    )
    assert held.status_code == 201, held.text
    waiter = await signed_in(client)
    line = await join(
        client, provider["id"], START, waiter.headers, mode="book", service_id=service_id
    )
    assert line.status_code == 201, line.text
    listed = await client.get(
        "/providers/me/sessions",
        headers=account.headers,
        params={"from": f"{DAY}T00:00:00Z", "to": f"{DAY}T23:59:00Z"},
    )
    (only,) = listed.json()

    cancelled = await client.post(
        f"/providers/me/sessions/{only['session_key']}/cancel", headers=account.headers, json={}
    )

    assert cancelled.status_code == 200, cancelled.text
    ended = (await client.get(f"/waitlist/{line.json()['id']}", headers=waiter.headers)).json()
    assert (ended["status"], ended["appointment_id"]) == ("expired", None)
    assert (await entry(app, uuid.UUID(ended["id"]))).reason == "session_cancelled"
    assert [status for _, status, _ in await active(app)] == []  # nothing booked, nothing held
    late = await client.post(
        "/appointments/",
        json=seat(provider, service_id, "10:00", hold_token=held.json()["hold_token"]),
    )
    assert code(late) in {"hold_not_found", "hold_expired"}


async def test_an_offer_holds_the_place_mails_its_token_and_books_with_it(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, booking = await taken_slot(client)
    waiter = await signed_in(client)
    one = (await join(client, provider["id"], START, waiter.headers)).json()
    await cancel(client, booking)
    offered = (await client.get(f"/waitlist/{one['id']}", headers=waiter.headers)).json()
    assert offered["status"] == "offered"
    assert offered["offer_expires_at"] == "2027-03-01T12:30:00Z"  # 30 minutes
    assert "10:00" not in await starts(client, provider)
    outsider = await client.post("/appointments/", json=guest_booking(provider["id"], START))
    assert code(outsider) == "slot_unavailable"
    (mail,) = await offers(app)
    assert mail.recipient_email == waiter.email
    token = mail.context["hold_token"]
    hold = await client.get(f"/holds/{token}")
    assert hold.status_code == 200, hold.text
    assert hold.json()["expires_at"] == "2027-03-01T12:30:00Z"
    booked = await client.post(
        "/appointments/",
        json={"provider_id": provider["id"], "start_datetime": START, "hold_token": token},
        headers=waiter.headers,
    )
    assert booked.status_code == 201, booked.text
    got = (await client.get(f"/waitlist/{one['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked"
    assert got["appointment_id"] == booked.json()["id"]


async def test_an_ended_offer_passes_to_the_next_waiter(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider, booking = await taken_slot(client)
    first, second = await signed_in(client), await signed_in(client)
    one = (await join(client, provider["id"], START, first.headers)).json()
    two = (await join(client, provider["id"], START, second.headers)).json()
    await cancel(client, booking)
    token = (await offers(app))[0].context["hold_token"]
    clock.now += timedelta(minutes=31)
    # Ended, even before the sweeper passed it on: its token books nothing, and the place
    # is not free to anyone else either.
    assert code(await client.get(f"/holds/{token}")) == "hold_not_found"
    late = await client.post(
        "/appointments/",
        json={"provider_id": provider["id"], "start_datetime": START, "hold_token": token},
        headers=first.headers,
    )
    assert code(late) == "hold_expired"
    assert "10:00" not in await starts(client, provider)
    outsider = await client.post("/appointments/", json=guest_booking(provider["id"], START))
    assert code(outsider) == "slot_unavailable"
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 1
    expired = (await client.get(f"/waitlist/{one['id']}", headers=first.headers)).json()
    assert expired["status"] == "expired"
    offered = (await client.get(f"/waitlist/{two['id']}", headers=second.headers)).json()
    assert offered["status"] == "offered"
    assert await count_rows(app, OutboxMessage, kind="waitlist_offer") == 2
    assert await count_rows(app, Appointment, status="held") == 1
    # The last offer ends with nobody left: the place is free again.
    clock.now += timedelta(minutes=31)
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 1
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 0
    assert await count_rows(app, Appointment, status="held") == 0
    assert "10:00" in await starts(client, provider)


async def test_releasing_an_offer_or_a_hold_hands_the_place_on(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    held = await client.post("/holds", json={"provider_id": provider["id"], "start_at": START})
    assert held.status_code == 201, held.text
    waiter, guest_email = await signed_in(client), unique_email("wait")
    one = (await join(client, provider["id"], START, waiter.headers, mode="book")).json()
    two = (await join(client, provider["id"], **as_guest(guest_email))).json()
    released = await client.delete(f"/holds/{held.json()['hold_token']}")
    assert released.status_code == 204, released.text
    got = (await client.get(f"/waitlist/{one['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked"
    assert (await client.get(f"/waitlist/by-token/{two['manage_token']}")).json()["status"] == (
        "waiting"
    )


async def test_a_lapsed_hold_with_waiters_is_handed_on_by_the_sweeper(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    held = await client.post("/holds", json={"provider_id": provider["id"], "start_at": START})
    assert held.status_code == 201, held.text
    waiter = await signed_in(client)
    one = (await join(client, provider["id"], START, waiter.headers, mode="book")).json()
    clock.now += timedelta(minutes=11)
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 1
    got = (await client.get(f"/waitlist/{one['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked"
    assert [status for _, status, _ in await active(app)] == ["pending"]


async def test_a_lapsed_hold_is_offered_to_the_first_waiter_by_the_sweeper(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    held = await client.post("/holds", json={"provider_id": provider["id"], "start_at": START})
    assert held.status_code == 201, held.text
    first, second = await signed_in(client), await signed_in(client)
    one = (await join(client, provider["id"], START, first.headers)).json()
    two = (await join(client, provider["id"], START, second.headers)).json()
    assert (one["mode"], two["mode"]) == ("offer", "offer")
    clock.now += timedelta(minutes=11)
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 1
    offered = (await client.get(f"/waitlist/{one['id']}", headers=first.headers)).json()
    assert offered["status"] == "offered"
    still = (await client.get(f"/waitlist/{two['id']}", headers=second.headers)).json()
    assert (still["status"], still["position"]) == ("waiting", 2)
    (mail,) = await offers(app)
    assert mail.recipient_email == first.email
    assert code(await client.get(f"/holds/{held.json()['hold_token']}")) == "hold_not_found"
    # The offer's hold took the lapsed hold's place: the one row that takes the time.
    assert [status for _, status, _ in await active(app)] == ["held"]
    booked = await client.post(
        "/appointments/",
        json={
            "provider_id": provider["id"],
            "start_datetime": START,
            "hold_token": mail.context["hold_token"],
        },
        headers=first.headers,
    )
    assert booked.status_code == 201, booked.text
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 0


async def test_a_lapsed_unverified_guest_booking_is_handed_on_by_the_sweeper(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, verify_guest_email=True)
    held = await client.post("/appointments/", json=guest_booking(provider["id"], START))
    assert held.json()["status"] == "pending_verification", held.text
    waiter = await signed_in(client)
    one = (await join(client, provider["id"], START, waiter.headers, mode="book")).json()
    clock.now += timedelta(minutes=15)
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 1
    got = (await client.get(f"/waitlist/{one['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked"
    released = (await client.get(f"/bookings/{held.json()['manage_token']}")).json()
    assert released["status"] == "cancelled"
    assert released["history"][-1]["reason"] == "The guest did not verify their email in time."
    assert [status for _, status, _ in await active(app)] == ["pending"]


async def test_a_lapsed_unverified_series_is_handed_on_to_its_waiters(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, verify_guest_email=True)
    series = await client.post(
        "/appointments/series",
        json={"provider_id": provider["id"], "start_datetime": START, "count": 2, **as_guest()},
    )
    assert series.status_code == 201, series.text
    second = "2027-03-09T10:00:00Z"
    waiter = await signed_in(client)
    one = (await join(client, provider["id"], second, waiter.headers, mode="book")).json()
    clock.now += timedelta(minutes=15)
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 1
    got = (await client.get(f"/waitlist/{one['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked"
    assert sorted(await active(app)) == [(second.replace("Z", "+00:00"), "pending", waiter.email)]


async def test_a_lapsed_seat_hold_goes_to_the_sessions_first_waiter(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The sweeper's own write releases the lapsed hold: its time is handed on once, by the
    sweeper, not a second time by the release (which would find the waiter, not yet marked
    as served, in conflict with their own new seat, and skip them)."""
    _, provider, service_id = await group_service(client, capacity=2)
    taken = await client.post("/appointments/", json=seat(provider, service_id, "10:00"))
    assert taken.status_code == 201, taken.text
    held = await client.post(
        "/holds", json={"provider_id": provider["id"], "start_at": START, "service_id": service_id}
    )
    assert held.status_code == 201, held.text
    assert code(await client.post("/appointments/", json=seat(provider, service_id, "10:00"))) == (
        "session_full"
    )
    waiters = [await signed_in(client) for _ in range(2)]
    entries = [
        (
            await join(client, provider["id"], START, w.headers, mode="book", service_id=service_id)
        ).json()
        for w in waiters
    ]
    clock.now += timedelta(minutes=11)
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 1
    statuses = [
        (await client.get(f"/waitlist/{e['id']}", headers=w.headers)).json()["status"]
        for e, w in zip(entries, waiters, strict=True)
    ]
    assert statuses == ["booked", "waiting"]
    assert [status for _, status, _ in await active(app)] == ["pending", "pending"]  # full again


async def test_a_write_that_releases_a_lapsed_hold_hands_its_time_to_the_waiter(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Any booking of the provider releases its lapsed holds as its first step: their time
    goes to the first in line there and then, before the booking is judged, never silently
    freed (the sweeper would no longer find the hold)."""
    _, provider = await bookable_provider(client)
    held = await client.post("/holds", json={"provider_id": provider["id"], "start_at": START})
    assert held.status_code == 201, held.text
    waiter = await signed_in(client)
    one = (await join(client, provider["id"], START, waiter.headers, mode="book")).json()
    clock.now += timedelta(minutes=11)
    assert "10:00" in await starts(client, provider)  # lapsed: listings skip it
    elsewhere = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T12:00:00Z")
    )
    assert elsewhere.status_code == 201, elsewhere.text
    got = (await client.get(f"/waitlist/{one['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked"
    assert "10:00" not in await starts(client, provider)
    assert await waitlist.sweep(app.state.slotwise.db, now=clock.now) == 0
    # A booker of the lapsed time itself comes after the line too: its release hands the
    # time to the waiter first, then its own judgment finds it taken.
    again = await client.post(
        "/holds", json={"provider_id": provider["id"], "start_at": f"{DAY}T14:00:00Z"}
    )
    assert again.status_code == 201, again.text
    other = await signed_in(client)
    two = (
        await join(client, provider["id"], f"{DAY}T14:00:00Z", other.headers, mode="book")
    ).json()
    clock.now += timedelta(minutes=11)
    late = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T14:00:00Z")
    )
    assert code(late) == "slot_unavailable"
    got = (await client.get(f"/waitlist/{two['id']}", headers=other.headers)).json()
    assert got["status"] == "booked"


def test_openapi_describes_the_waitlist_routes_and_their_errors(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    joining = paths["/api/v1/waitlist"]["post"]
    assert {"201", "404", "409", "422", "429"} <= set(joining["responses"])
    for error in ("slot_available", "already_waiting", "waitlist_limit_reached"):
        assert error in joining["description"]
    assert joining["x-api-key-scope"] == "book"
    for path in ("/api/v1/waitlist/{entry_id}", "/api/v1/waitlist/by-token/{token}"):
        assert {"200", "404"} <= set(paths[path]["get"]["responses"])
        assert {"204", "404", "409"} <= set(paths[path]["delete"]["responses"])
        assert "waitlist_entry_not_found" in paths[path]["get"]["description"]
    assert paths["/api/v1/waitlist/{entry_id}"]["delete"]["x-api-key-scope"] == "book"
    assert {"200", "401", "403"} <= set(paths["/api/v1/providers/me/waitlist"]["get"]["responses"])
    schema = app.openapi()["components"]["schemas"]["WaitlistCreate"]["properties"]
    assert schema["mode"]["enum"] == ["offer", "book"]
