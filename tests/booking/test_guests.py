"""A guest email is not an account, and what a public booking page needs against abuse: a
rate limit per client address, a cap per guest email and provider, and (where the provider
asks) a hold until the guest verifies the email. Each on both ways the booking route
writes: the booking queue (booking.queue) and an idempotent booking (create.book in a
transaction of its own)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select, text
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from slotwise import migrate
from slotwise.db import make_engine
from slotwise.notifications import render
from slotwise.notifications.models import OutboxMessage
from tests.conftest import served
from tests.factories import (
    Account,
    Clock,
    bookable_provider,
    count_rows,
    guest_booking,
    signed_in,
    unique_email,
)

DAY = "2027-03-02"  # a Tuesday, the day after the test clock's now
WAYS = ["writer", "idempotent"]
_keys = itertools.count()


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def post(
    client: httpx.AsyncClient,
    way: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /appointments/ the given way: "writer" (the booking writer, with the bookings
    that arrive alongside), "idempotent" (an Idempotency-Key: create.book alone)."""
    headers = dict(headers or {})
    if way == "idempotent":
        headers["Idempotency-Key"] = f"guests-{next(_keys)}"
    return await client.post("/appointments/", json=body, headers=headers)


def code(response: httpx.Response) -> str | int:
    return response.json().get("code", response.status_code)


# -- a guest email is not an account -------------------------------------------------------


async def test_a_guest_with_an_accounts_email_takes_nothing_from_the_account(
    client: httpx.AsyncClient, clock: Clock, way: str
) -> None:
    _, first = await bookable_provider(client)
    _, second = await bookable_provider(client)
    customer = await signed_in(client)
    as_guest = await post(
        client, way, guest_booking(first["id"], f"{DAY}T10:00:00Z", customer.email.upper())
    )
    assert as_guest.status_code == 201, as_guest.text
    own = await post(
        client,
        way,
        {"provider_id": second["id"], "start_datetime": f"{DAY}T10:00:00Z"},
        customer.headers,
    )
    assert own.status_code == 201, own.text  # was 409 client_conflict
    mine = await client.get("/appointments/me", headers=customer.headers)
    assert [a["id"] for a in mine.json()["items"]] == [own.json()["id"]]
    # ... and the other way round: the account's booking is not the guest's either.
    again = await post(client, way, guest_booking(second["id"], f"{DAY}T11:00:00Z", customer.email))
    assert again.status_code == 201, again.text
    clash = await post(client, way, guest_booking(second["id"], f"{DAY}T10:00:00Z", customer.email))
    assert code(clash) == "slot_unavailable"  # the provider's time, not the client's


async def test_a_guests_no_shows_do_not_block_the_account(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider_account, provider = await bookable_provider(client)
    _, other = await bookable_provider(client)
    customer = await signed_in(client)
    for hour in ("09", "10", "11"):
        booked = await client.post(
            "/appointments/",
            json=guest_booking(provider["id"], f"{DAY}T{hour}:00:00Z", customer.email),
        )
        appointment_id = booked.json()["id"]
        await client.patch(
            f"/appointments/{appointment_id}/status",
            headers=provider_account.headers,
            json={"status": "confirmed"},
        )
        clock.now = clock.now.replace(day=2, hour=int(hour), minute=5)
        marked = await client.post(
            f"/appointments/{appointment_id}/mark-no-show", headers=provider_account.headers
        )
        assert marked.status_code == 200, marked.text
        clock.now = clock.now.replace(day=1, hour=12, minute=0)
    guest_again = await client.post(
        "/appointments/", json=guest_booking(other["id"], f"{DAY}T14:00:00Z", customer.email)
    )
    assert code(guest_again) == "client_blocked"  # the guest is blocked ...
    own = await client.post(
        "/appointments/",
        headers=customer.headers,
        json={"provider_id": other["id"], "start_datetime": f"{DAY}T14:00:00Z"},
    )
    assert own.status_code == 201, own.text  # ... the account is not


# -- a rate limit per client address on bookings without a token ---------------------------


async def test_guest_bookings_are_limited_per_client_address(
    database_url: str, clock: Clock, way: str
) -> None:
    async with served(database_url, clock, rate_limit_guest_booking_ip="2/hour") as (app, client):
        _, provider = await bookable_provider(client)
        customer = await signed_in(client)
        answers = [
            await post(client, way, guest_booking(provider["id"], f"{DAY}T{hour}:00:00Z"))
            for hour in ("09", "10", "11")
        ]
        assert [a.status_code for a in answers] == [201, 201, 429]
        assert answers[2].json()["code"] == "rate_limited"
        assert 0 < int(answers[2].headers["Retry-After"]) <= 3600
        signed = await post(
            client,
            way,
            {"provider_id": provider["id"], "start_datetime": f"{DAY}T12:00:00Z"},
            customer.headers,
        )
        assert signed.status_code == 201, signed.text  # a token: not a guest booking
        assert await count_rows(app, OutboxMessage, kind="booking_received") == 3
        # Another address has its own count.
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as other:
            elsewhere = await post(other, way, guest_booking(provider["id"], f"{DAY}T13:00:00Z"))
        assert elsewhere.status_code == 201, elsewhere.text


# -- a cap on a guest email's upcoming bookings with one provider --------------------------


async def test_a_guest_email_holds_at_most_three_upcoming_bookings_with_a_provider(
    client: httpx.AsyncClient, clock: Clock, way: str
) -> None:
    _, provider = await bookable_provider(client)
    _, other = await bookable_provider(client)
    email = unique_email("busy")
    answers = [
        await post(client, way, guest_booking(provider["id"], f"{DAY}T{hour}:00:00Z", email))
        for hour in ("09", "10", "11", "12")
    ]
    assert [a.status_code for a in answers[:3]] == [201, 201, 201]
    assert answers[3].status_code == 409
    assert answers[3].json()["code"] == "guest_limit_reached"
    assert answers[3].json()["details"] == {"max_active_bookings": 3}
    # Another provider, another email (even in another case: one guest), an account.
    elsewhere = await post(client, way, guest_booking(other["id"], f"{DAY}T12:00:00Z", email))
    assert elsewhere.status_code == 201, elsewhere.text
    same_upper = await post(
        client, way, guest_booking(provider["id"], f"{DAY}T13:00:00Z", email.upper())
    )
    assert code(same_upper) == "guest_limit_reached"
    # A booking cancelled frees its place.
    token = answers[0].json()["manage_token"]
    cancelled = await client.post(f"/bookings/{token}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    freed = await post(client, way, guest_booking(provider["id"], f"{DAY}T14:00:00Z", email))
    assert freed.status_code == 201, freed.text


async def test_the_cap_holds_when_a_guest_books_many_times_at_once(
    client: httpx.AsyncClient, clock: Clock, way: str
) -> None:
    """Ten bookings of one guest email fired together (the writer batches them; idempotent
    ones are concurrent transactions): three are written, whatever the interleaving."""
    _, provider = await bookable_provider(client)
    email = unique_email("storm")
    answers = await asyncio.gather(
        *(
            post(client, way, guest_booking(provider["id"], f"{DAY}T{9 + i:02d}:00:00Z", email))
            for i in range(8)
        )
    )
    assert Counter(code(a) if a.status_code != 201 else 201 for a in answers) == {
        201: 3,
        "guest_limit_reached": 5,
    }


# -- a hold until the guest verifies the email ---------------------------------------------


async def verify_link(app: FastAPI, appointment_id: str) -> str:
    """The verification link mailed for a held booking (the path under /api/v1)."""
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = (
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == "booking_verify")
            )
        ).all()
    [row] = [row for row in rows if row.context["appointment_id"] == appointment_id]
    url = str(row.context["verify_url"])
    mail = render.email(row, sender="Slotwise <no-reply@slotwise.invalid>")
    assert url in mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    return url.split("/api/v1", 1)[1]


async def starts(client: httpx.AsyncClient, provider: dict[str, Any]) -> list[str]:
    slots = await client.get(f"/providers/{provider['id']}/slots", params={"date": DAY})
    return [s["start_at"][11:16] for s in slots.json()["slots"]]


async def test_a_held_booking_is_kept_once_the_guest_follows_the_link(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, way: str
) -> None:
    _, provider = await bookable_provider(client, verify_guest_email=True)
    assert "10:00" in await starts(client, provider)
    held = await post(client, way, guest_booking(provider["id"], f"{DAY}T10:00:00Z"))
    assert held.status_code == 201, held.text
    body = held.json()
    assert body["status"] == "pending_verification"
    hold_until = datetime.fromisoformat(body["hold_until"])
    assert hold_until == clock.now + timedelta(minutes=15)
    assert "10:00" not in await starts(client, provider)  # its time held
    taken = await post(client, way, guest_booking(provider["id"], f"{DAY}T10:00:00Z"))
    assert code(taken) == "slot_unavailable"
    # Nothing for the provider yet; the guest's one message carries the link.
    assert await count_rows(app, OutboxMessage, kind="booking_received") == 0
    link = await verify_link(app, body["id"])
    page = await client.get(link)  # what a mail scanner does: nothing changes
    assert page.status_code == 200
    assert '<form method="post">' in page.text
    manage = await client.get(f"/bookings/{body['manage_token']}")
    assert manage.json()["status"] == "pending_verification"
    verified = await client.post(link)
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "pending"  # now awaits the provider, as any booking
    assert verified.json()["hold_until"] is None
    assert [e["action"] for e in verified.json()["history"]] == ["created", "email_verified"]
    assert await count_rows(app, OutboxMessage, kind="booking_received") == 1
    assert await count_rows(app, OutboxMessage, kind="booking_pending") == 1
    again = await client.post(link, headers={"Accept": "text/html"})  # a second click
    assert again.status_code == 200
    assert "kept" in again.text
    clock.now += timedelta(hours=1)  # verified: no longer held, so never released
    assert "10:00" not in await starts(client, provider)
    assert code(await post(client, way, guest_booking(provider["id"], f"{DAY}T10:00:00Z"))) == (
        "slot_unavailable"
    )


async def test_a_held_booking_is_released_when_its_link_expires(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, way: str
) -> None:
    _, provider = await bookable_provider(client, verify_guest_email=True)
    held = await post(client, way, guest_booking(provider["id"], f"{DAY}T10:00:00Z"))
    assert held.json()["status"] == "pending_verification", held.text
    link = await verify_link(app, held.json()["id"])
    assert "10:00" not in await starts(client, provider)
    clock.now += timedelta(minutes=15)
    assert "10:00" in await starts(client, provider)  # free at once: no job, no write
    another = await post(client, way, guest_booking(provider["id"], f"{DAY}T10:00:00Z"))
    assert another.status_code == 201, another.text
    late = await client.post(link)
    assert code(late) == "verification_expired"
    manage = await client.get(f"/bookings/{held.json()['manage_token']}")
    assert manage.json()["status"] == "cancelled"
    assert manage.json()["history"][-1]["action"] == "status_changed"


async def test_an_expired_hold_frees_the_time_for_a_signed_in_client(
    client: httpx.AsyncClient, clock: Clock, way: str
) -> None:
    """A signed-in client's booking (on PostgreSQL the writer's one statement, which the
    exclusion constraint makes skip the hold it cannot see expired, then booked alone)."""
    _, provider = await bookable_provider(client, verify_guest_email=True)
    customer = await signed_in(client)
    held = await post(client, way, guest_booking(provider["id"], f"{DAY}T10:00:00Z"))
    assert held.json()["status"] == "pending_verification", held.text
    signed = {"provider_id": provider["id"], "start_datetime": f"{DAY}T10:00:00Z"}
    assert code(await post(client, way, signed, customer.headers)) == "slot_unavailable"
    clock.now += timedelta(minutes=16)
    booked = await post(client, way, signed, customer.headers)
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "pending"


async def test_signed_in_clients_and_providers_that_do_not_verify_are_not_held(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, way: str
) -> None:
    account, provider = await bookable_provider(client, verify_guest_email=True)
    customer: Account = await signed_in(client)
    signed = await post(
        client,
        way,
        {"provider_id": provider["id"], "start_datetime": f"{DAY}T09:00:00Z"},
        customer.headers,
    )
    assert signed.json()["status"] == "pending", signed.text
    off = await client.patch(
        "/providers/me", headers=account.headers, json={"verify_guest_email": False}
    )
    assert off.status_code == 200, off.text
    assert off.json()["verify_guest_email"] is False
    guest = await post(client, way, guest_booking(provider["id"], f"{DAY}T10:00:00Z"))
    assert guest.json()["status"] == "pending", guest.text
    assert await count_rows(app, OutboxMessage, kind="booking_verify") == 0


async def test_behind_a_trusted_proxy_the_limit_counts_the_forwarded_address(
    database_url: str, clock: Clock
) -> None:
    """As `slotwise serve` runs it (uvicorn's proxy headers, loopback trusted by default):
    a loopback proxy's X-Forwarded-For is the client address the limit counts; the same
    header from any other peer is ignored, so a client cannot pick its own count."""
    async with served(database_url, clock, rate_limit_guest_booking_ip="1/hour") as (app, client):
        _, provider = await bookable_provider(client)
        trusted = uvicorn.Config(app).forwarded_allow_ips
        assert trusted == "127.0.0.1,::1"
        proxied = ProxyHeadersMiddleware(app, trusted_hosts=trusted)

        async def book(peer: str, forwarded: str, hour: int) -> int:
            transport = httpx.ASGITransport(app=proxied, client=(peer, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
                response = await c.post(
                    "/appointments/",
                    json=guest_booking(provider["id"], f"{DAY}T{hour:02d}:00:00Z"),
                    headers={"X-Forwarded-For": forwarded},
                )
            return response.status_code

        # Behind the proxy: two clients, one count each.
        assert await book("127.0.0.1", "198.51.100.1", 9) == 201
        assert await book("127.0.0.1", "198.51.100.2", 10) == 201
        assert await book("127.0.0.1", "198.51.100.1", 11) == 429
        # Not a trusted proxy: its header is ignored, the peer is counted.
        assert await book("203.0.113.50", "198.51.100.3", 12) == 201
        assert await book("203.0.113.50", "198.51.100.4", 13) == 429


async def test_a_guest_may_cancel_a_held_booking_and_the_provider_hears_nothing(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, verify_guest_email=True)
    held = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    link = await verify_link(app, held.json()["id"])
    token = held.json()["manage_token"]
    moved = await client.post(
        f"/bookings/{token}/reschedule", json={"new_start_time": f"{DAY}T11:00:00Z"}
    )
    assert code(moved) == "invalid_transition"  # kept first, then moved
    cancelled = await client.post(f"/bookings/{token}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert await count_rows(app, OutboxMessage, kind="booking_cancelled") == 0
    assert "10:00" in await starts(client, provider)
    assert code(await client.post(link)) == "invalid_transition"
    assert code(await client.post("/bookings/verify/" + "x" * 43)) == "appointment_not_found"


async def test_migration_0011_gives_existing_guest_bookings_their_own_key(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, database_url: str
) -> None:
    _, provider = await bookable_provider(client, verify_guest_email=True)
    email = unique_email("before")
    held = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z", email)
    )
    assert held.json()["status"] == "pending_verification"
    await app.state.slotwise.db.dispose()

    async def keys() -> list[tuple[str, str]]:
        engine = make_engine(database_url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(text("SELECT client_key, status FROM appointments"))
                return [(key, status) for key, status in rows.all()]
        finally:
            await engine.dispose()

    await asyncio.to_thread(migrate.downgrade, database_url, "0009")
    assert await keys() == [(email, "cancelled")]  # as before 0011: held ones cancelled
    await asyncio.to_thread(migrate.upgrade, database_url, "head")
    assert await keys() == [(f"guest:{email}", "cancelled")]


async def test_the_cap_holds_across_every_way_at_once(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    """One guest email already holding a booking, then seven more fired together over the
    ways (the writer's batches and lone transactions interleaved): two written."""
    _, provider = await bookable_provider(client)
    email = unique_email("mixed")
    body = guest_booking(provider["id"], f"{DAY}T09:00:00Z", email)
    assert (await post(client, "writer", body)).status_code == 201
    answers = await asyncio.gather(
        *(
            post(
                client,
                WAYS[h % len(WAYS)],
                guest_booking(provider["id"], f"{DAY}T{h}:00:00Z", email),
            )
            for h in range(10, 17)
        )
    )
    assert Counter(code(a) if a.status_code != 201 else 201 for a in answers) == {
        201: 2,
        "guest_limit_reached": 5,
    }
