"""Booking emails through a real SMTP server: each arrives once, right person, right zone."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import httpx
import icalendar
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from slotwise.booking.facts import Party
from slotwise.notifications import outbox
from slotwise.notifications.models import OutboxMessage, OutboxStatus
from slotwise.notifications.worker import Worker
from tests.factories import BOOKING_NOW, Clock, bookable_provider, guest_booking, unique_email
from tests.notifications.conftest import SmtpServer, register_client

START = "2027-03-05T15:00:00Z"  # 10:00 in New York, 16:00 in Paris, 00:00 next day in Tokyo


def _calendar(message: object) -> icalendar.Calendar:
    for part in message.walk():  # type: ignore[attr-defined]
        if part.get_content_type() == "text/calendar":
            return icalendar.Calendar.from_ical(part.get_payload(decode=True))
    raise AssertionError("no text/calendar part")


def _text(message: object) -> str:
    body = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    return str(body.get_content())


async def _book(
    client: httpx.AsyncClient, *, requires_confirmation: bool, start: str = START
) -> tuple[dict[str, str], dict[str, str], str, str, dict[str, object]]:
    provider, profile = await bookable_provider(
        client,
        hours=("00:00:00", "23:59:00"),
        requires_confirmation=requires_confirmation,
        timezone="America/New_York",
        cancellation_window_minutes=0,
    )
    email = unique_email("clara")
    headers = await register_client(client, timezone="Asia/Tokyo", email=email)
    response = await client.post(
        "/appointments/",
        headers=headers,
        json={"provider_id": profile["id"], "start_datetime": start},
    )
    assert response.status_code == 201, response.text
    return provider.headers, headers, provider.email, email, response.json()


async def test_instant_booking_sends_received_and_confirmed_once(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    _, _, provider_email, client_email, appointment = await _book(
        client, requires_confirmation=False
    )
    outcome = await worker.run_until_idle(now=clock.now)
    assert outcome.sent == 2
    assert smtp.inbox.kinds() == sorted(
        [(provider_email, "booking_received"), (client_email, "booking_confirmed")]
    )
    (to_provider,) = smtp.inbox.to(provider_email)
    assert "Friday 5 March 2027, 10:00 EST" in str(to_provider["Subject"])
    assert "America/New_York" in _text(to_provider)
    (confirmed,) = smtp.inbox.to(client_email)
    assert "Saturday 6 March 2027, 00:00 JST" in str(confirmed["Subject"])
    assert "Asia/Tokyo" in _text(confirmed)
    assert confirmed["Message-ID"].endswith("@slotwise>")
    calendar = _calendar(confirmed)
    assert calendar["METHOD"] == "REQUEST"
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == f"{appointment['id']}@slotwise"
    assert event.decoded("DTSTART").isoformat() == "2027-03-05T15:00:00+00:00"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["ORGANIZER"]) == f"mailto:{provider_email}"
    # Nothing more is due now: a second run sends nothing.
    assert (await worker.run_until_idle(now=clock.now)).sent == 0
    assert len(smtp.inbox.messages) == 2


async def test_confirmation_flow_and_cancellation_update_the_same_event(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    provider, customer, provider_email, client_email, appointment = await _book(
        client, requires_confirmation=True
    )
    await worker.run_until_idle(now=clock.now)
    assert smtp.inbox.kinds() == sorted(
        [(provider_email, "booking_received"), (client_email, "booking_pending")]
    )
    assert not any(p.get_content_type() == "text/calendar" for p in smtp.inbox.messages[0].walk())
    response = await client.patch(
        f"/appointments/{appointment['id']}/status",
        headers=provider,
        json={"status": "confirmed"},
    )
    assert response.status_code == 200, response.text
    response = await client.post(
        f"/appointments/{appointment['id']}/cancel",
        headers=customer,
        json={"reason": "Flight moved"},
    )
    assert response.status_code == 200, response.text
    await worker.run_until_idle(now=clock.now)

    confirmed = [
        m for m in smtp.inbox.to(client_email) if m["X-Slotwise-Kind"] == "booking_confirmed"
    ]
    cancelled = [m for m in smtp.inbox.messages if m["X-Slotwise-Kind"] == "booking_cancelled"]
    assert len(confirmed) == 1
    assert sorted(str(m["To"]) for m in cancelled) == sorted([provider_email, client_email])
    for message in cancelled:
        assert "Flight moved" in _text(message)
    invite = _calendar(confirmed[0]).walk("VEVENT")[0]
    cancellation = _calendar(cancelled[0])
    assert cancellation["METHOD"] == "CANCEL"
    withdrawn = cancellation.walk("VEVENT")[0]
    assert withdrawn["UID"] == invite["UID"]
    assert int(withdrawn["SEQUENCE"]) > int(invite["SEQUENCE"])
    assert str(withdrawn["STATUS"]) == "CANCELLED"


async def test_declined_booking_tells_the_client(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    provider, _, _, client_email, appointment = await _book(client, requires_confirmation=True)
    response = await client.patch(
        f"/appointments/{appointment['id']}/status", headers=provider, json={"status": "declined"}
    )
    assert response.status_code == 200, response.text
    await worker.run_until_idle(now=clock.now)
    kinds = [m["X-Slotwise-Kind"] for m in smtp.inbox.to(client_email)]
    assert sorted(kinds) == ["booking_declined", "booking_pending"]


async def test_rescheduled_sends_old_and_new_times_and_an_update(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    provider, _, _, client_email, appointment = await _book(client, requires_confirmation=False)
    response = await client.post(
        f"/appointments/{appointment['id']}/reschedule",
        headers=provider,
        json={"new_start_time": "2027-03-06T15:00:00Z"},
    )
    assert response.status_code == 200, response.text
    await worker.run_until_idle(now=clock.now)
    (moved,) = [
        m for m in smtp.inbox.to(client_email) if m["X-Slotwise-Kind"] == "booking_rescheduled"
    ]
    text = _text(moved)
    assert "Was: Saturday 6 March 2027, 00:00 JST" in text
    assert "Now: Sunday 7 March 2027, 00:00 JST" in text
    (confirmed,) = [
        m for m in smtp.inbox.to(client_email) if m["X-Slotwise-Kind"] == "booking_confirmed"
    ]
    before = _calendar(confirmed).walk("VEVENT")[0]
    after = _calendar(moved)
    assert after["METHOD"] == "REQUEST"
    event = after.walk("VEVENT")[0]
    assert event["UID"] == before["UID"]
    assert int(event["SEQUENCE"]) > int(before["SEQUENCE"])
    assert event.decoded("DTSTART").isoformat() == "2027-03-06T15:00:00+00:00"


async def test_a_guest_is_mailed_no_link_unless_the_application_has_one(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    """Without ``guest_manage_url`` the token is only in the booking's answer (see
    test_guest_manage_link.py for the link)."""
    _, profile = await bookable_provider(
        client, hours=("00:00:00", "23:59:00"), requires_confirmation=False
    )
    email = unique_email("gus")
    response = await client.post("/appointments/", json=guest_booking(profile["id"], START, email))
    assert response.status_code == 201, response.text
    await worker.run_until_idle(now=clock.now)
    (mail,) = smtp.inbox.to(email)
    assert str(mail["X-Slotwise-Kind"]) == "booking_confirmed"
    assert "reschedule" not in _text(mail)
    assert response.json()["manage_token"] not in mail.as_string()


async def test_a_rolled_back_booking_queues_nothing(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, _, _, _, appointment = await _book(client, requires_confirmation=False)
    other = await register_client(client, timezone="UTC", email=unique_email("late"))
    before = await _count(app)
    assert before == 4  # received, confirmed, and the 24 h and 1 h reminders
    response = await client.post(
        "/appointments/",
        headers=other,
        json={"provider_id": appointment["provider_id"], "start_datetime": START},
    )
    assert response.status_code == 409, response.text
    assert await _count(app) == before


async def _count(app: FastAPI) -> int:
    async with app.state.slotwise.db.session(writes=False) as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def _queue(app: FastAPI, count: int) -> None:
    async with app.state.slotwise.db.session(writes=True) as session:
        batch = outbox.Batch()
        for n in range(count):
            batch.add(
                kind="password_reset",
                to=Party(email=f"user{n}@example.com", name=f"User {n}", timezone="UTC"),
                context={"reset_url": f"http://test/reset#{n}", "valid_minutes": 60},
                now=BOOKING_NOW,
            )
        await batch.write(session)
        await session.commit()


async def _statuses(app: FastAPI) -> dict[str, int]:
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = await session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        return {str(status): int(n) for status, n in rows}


async def test_smtp_down_keeps_messages_queued_then_delivers_each_once(
    app: FastAPI, smtp: SmtpServer, worker: Worker
) -> None:
    await _queue(app, 5)
    smtp.stop()
    outcome = await worker.run_until_idle(now=BOOKING_NOW)
    assert (outcome.sent, outcome.retried) == (0, 5)
    assert await _statuses(app) == {"pending": 5}
    # Backoff: not retried before base * 2**0 = 60 s.
    smtp.start()
    assert (await worker.run_until_idle(now=BOOKING_NOW + timedelta(seconds=59))).sent == 0
    assert (await worker.run_until_idle(now=BOOKING_NOW + timedelta(seconds=60))).sent == 5
    assert (await worker.run_until_idle(now=BOOKING_NOW + timedelta(hours=1))).sent == 0
    ids = [m["Message-ID"] for m in smtp.inbox.messages]
    assert len(ids) == len(set(ids)) == 5
    assert await _statuses(app) == {"sent": 5}


async def test_after_the_last_attempt_a_message_is_dead_with_its_error(
    app: FastAPI, smtp: SmtpServer, worker: Worker
) -> None:
    await _queue(app, 1)
    smtp.stop()
    now = BOOKING_NOW
    for _ in range(4):
        await worker.run_until_idle(now=now)
        now += timedelta(days=1)
    assert await _statuses(app) == {"dead": 1}
    async with app.state.slotwise.db.session(writes=False) as session:
        row = await session.scalar(select(OutboxMessage))
    assert row is not None
    assert row.attempts == 4
    assert row.last_error
    assert row.status is OutboxStatus.DEAD


# Several workers share the queue on PostgreSQL only (SQLite runs one), so this runs there.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_workers_on_postgres_deliver_each_of_200_exactly_once(
    app: FastAPI, settings: object, smtp: SmtpServer, worker: Worker, database_url: str
) -> None:
    await _queue(app, 200)
    second = dataclasses.replace(worker, worker_id="second")
    third = dataclasses.replace(worker, worker_id="third")
    outcomes = await asyncio.gather(
        *(w.run_until_idle(now=BOOKING_NOW) for w in (worker, second, third))
    )
    assert sum(o.sent for o in outcomes) == 200
    assert sum(1 for o in outcomes if o.sent) >= 2  # the work was shared
    ids = [str(m["Message-ID"]) for m in smtp.inbox.messages]
    assert len(ids) == len(set(ids)) == 200
    assert await _statuses(app) == {"sent": 200}
