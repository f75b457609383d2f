"""A guest's manage link by email (``guest_manage_url``): in the guest's first message only,
working, and kept in the outbox only until that message is finished."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import select

from slotwise.config import Settings
from slotwise.notifications.models import OutboxMessage
from slotwise.notifications.worker import Worker
from tests.conftest import make_settings
from tests.factories import Clock, bookable_provider, guest_booking, unique_email
from tests.notifications.conftest import SmtpServer, mail_settings, register_client

START = "2027-03-05T15:00:00Z"
MANAGE = "https://book.example.com/manage/{token}"
LINK = re.compile(r"https://book\.example\.com/manage/([A-Za-z0-9_-]+)")


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    return mail_settings(
        database_url,
        smtp,
        reminder_offsets_minutes=[1440],
        outbox_max_attempts=2,
        guest_manage_url=MANAGE,
    )


def _text(message: object) -> str:
    body = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    return str(body.get_content())


def _html(message: object) -> str:
    body = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    return str(body.get_content())


async def _guest_books(
    client: httpx.AsyncClient, *, requires_confirmation: bool, email: str
) -> dict[str, object]:
    _, provider = await bookable_provider(
        client, hours=("00:00:00", "23:59:00"), requires_confirmation=requires_confirmation
    )
    response = await client.post("/appointments/", json=guest_booking(provider["id"], START, email))
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def _contexts(app: FastAPI) -> dict[str, list[dict[str, object]]]:
    """Each recipient's messages' stored contexts."""
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = list(await session.scalars(select(OutboxMessage)))
    found: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        found.setdefault(row.recipient_email, []).append(row.context)
    return found


@pytest.mark.parametrize(
    ("requires_confirmation", "kind"),
    [(False, "booking_confirmed"), (True, "booking_pending")],
)
async def test_the_guests_first_email_carries_a_working_link(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: Clock,
    smtp: SmtpServer,
    worker: Worker,
    requires_confirmation: bool,
    kind: str,
) -> None:
    email = unique_email("gus")
    booked = await _guest_books(client, requires_confirmation=requires_confirmation, email=email)
    assert (await worker.run_until_idle(now=clock.now)).sent == 2
    (mail,) = smtp.inbox.to(email)
    assert mail["X-Slotwise-Kind"] == kind
    text_link = LINK.search(_text(mail))
    html_link = LINK.search(_html(mail))
    assert text_link is not None
    assert html_link is not None
    assert text_link.group(1) == html_link.group(1) == booked["manage_token"]
    mailed = await client.get(f"/bookings/{text_link.group(1)}")
    assert mailed.status_code == 200
    assert mailed.json()["id"] == booked["id"]
    # The provider's notice carries no link, and once sent no row keeps the guest's.
    (notice,) = [m for m in smtp.inbox.messages if m["To"] != email]
    assert LINK.search(_text(notice)) is None
    contexts = await _contexts(app)
    assert contexts[email]
    assert all("manage_url" not in context for rows in contexts.values() for context in rows)


async def test_the_link_is_in_the_first_message_only_and_kept_until_it_is_sent(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    email = unique_email("gus")
    booked = await _guest_books(client, requires_confirmation=False, email=email)
    first, reminder = sorted((await _contexts(app))[email], key=lambda c: "offset_minutes" in c)
    assert first["manage_url"] == MANAGE.replace("{token}", str(booked["manage_token"]))
    assert "manage_url" not in reminder  # due a day before: no secret kept that long
    await worker.run_until_idle(now=clock.now)
    (sent, _) = sorted((await _contexts(app))[email], key=lambda c: "offset_minutes" in c)
    assert "manage_url" not in sent
    assert sent["appointment_id"] == first["appointment_id"]  # the rest of the row is kept


async def test_a_message_given_up_drops_its_link_too(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    email = unique_email("gus")
    await _guest_books(client, requires_confirmation=False, email=email)
    smtp.stop()
    await worker.run_until_idle(now=clock.now)
    assert any("manage_url" in context for context in (await _contexts(app))[email])  # retried
    await worker.run_until_idle(now=clock.now + timedelta(hours=1))  # the last attempt
    assert all("manage_url" not in context for context in (await _contexts(app))[email])


async def test_a_signed_in_client_gets_no_link(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    _, provider = await bookable_provider(client, hours=("00:00:00", "23:59:00"))
    email = unique_email("clara")
    headers = await register_client(client, timezone="UTC", email=email)
    body = {"provider_id": provider["id"], "start_datetime": START}
    response = await client.post("/appointments/", headers=headers, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["manage_token"] is None
    assert all("manage_url" not in context for context in (await _contexts(app))[email])
    await worker.run_until_idle(now=clock.now)
    (mail,) = smtp.inbox.to(email)
    assert "cancel or reschedule" not in _text(mail).lower()


async def test_a_replay_keeps_the_mailed_link_working(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    _, provider = await bookable_provider(client, hours=("00:00:00", "23:59:00"))
    body = guest_booking(provider["id"], START)
    headers = {"Idempotency-Key": "guest-key"}
    first = await client.post("/appointments/", headers=headers, json=body)
    again = await client.post("/appointments/", headers=headers, json=body)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["manage_token"] is None
    await worker.run_until_idle(now=clock.now)
    (mail,) = smtp.inbox.to(body["guest_details"]["email"])  # type: ignore[index]
    link = LINK.search(_text(mail))
    assert link is not None
    assert link.group(1) == first.json()["manage_token"]
    assert (await client.get(f"/bookings/{link.group(1)}")).status_code == 200


@pytest.mark.parametrize(
    "template",
    ["https://book.example.com/manage", "book.example.com/manage/{token}", "ftp://x/{token}"],
)
def test_a_link_template_without_a_token_or_an_http_url_is_refused(template: str) -> None:
    with pytest.raises(ValidationError, match="guest_manage_url"):
        make_settings("sqlite+aiosqlite:///:memory:", guest_manage_url=template)
