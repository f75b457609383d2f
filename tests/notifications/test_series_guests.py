"""A guest's recurring series by email, through a real SMTP server: one message for the
series (never one per occurrence) carrying its manage link; with a provider that verifies
guests' emails, every occurrence held until the guest follows the one link mailed for the
series, kept by it at once, released when it expires."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from slotwise.config import Settings
from slotwise.notifications.worker import Worker
from tests.booking.test_holds import code, starts
from tests.conftest import make_settings
from tests.factories import Clock, bookable_provider, guest_booking, signed_in, unique_email
from tests.notifications.conftest import SmtpServer, mail_settings

FIRST = "2027-03-03"  # a Wednesday; the test clock's now is Monday 2027-03-01 12:00 UTC
WEEKS = ("2027-03-03", "2027-03-10", "2027-03-17")
MANAGE = "https://book.example.com/manage/{token}"
MANAGE_LINK = re.compile(r"https://book\.example\.com/manage/series/([A-Za-z0-9_-]+)")
VERIFY_LINK = re.compile(r"http://\S+/api/v1(/bookings/series/verify/[A-Za-z0-9_-]+)")


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    return mail_settings(database_url, smtp, reminder_offsets_minutes=[60], guest_manage_url=MANAGE)


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def _html(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def _series(provider: dict[str, Any], email: str, **extra: Any) -> dict[str, Any]:
    body = {
        "provider_id": provider["id"],
        "start_datetime": f"{FIRST}T10:00:00",
        "count": 3,
        "guest_details": {"name": "Gia Guest", "email": email},
    }
    body.update(extra)
    return body


async def _book_series(
    client: httpx.AsyncClient, provider: dict[str, Any], email: str, **extra: Any
) -> dict[str, Any]:
    response = await client.post("/appointments/series", json=_series(provider, email, **extra))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _mailed(worker: Worker, clock: Clock, smtp: SmtpServer, email: str) -> EmailMessage:
    """The one message the guest got (the worker run until it has sent what is due)."""
    await worker.run_until_idle(now=clock.now)
    (mail,) = smtp.inbox.to(email)
    return mail


async def _verifying_provider(client: httpx.AsyncClient, **profile: object) -> dict[str, Any]:
    _, provider = await bookable_provider(client, verify_guest_email=True, **profile)
    return provider


def _verify_path(mail: EmailMessage) -> str:
    found = VERIFY_LINK.search(_text(mail))
    assert found is not None, _text(mail)
    assert found.group(0) in _html(mail)
    return found.group(1)


# -- the manage link, in the series' one message ----------------------------------------------


@pytest.mark.parametrize(
    ("requires_confirmation", "kind"),
    [(False, "series_confirmed"), (True, "series_pending")],
)
async def test_a_guests_series_is_mailed_once_with_a_link_that_manages_it(
    client: httpx.AsyncClient,
    clock: Clock,
    smtp: SmtpServer,
    worker: Worker,
    requires_confirmation: bool,
    kind: str,
) -> None:
    _, provider = await bookable_provider(client, requires_confirmation=requires_confirmation)
    email = unique_email("gia")
    booked = await _book_series(client, provider, email)
    mail = await _mailed(worker, clock, smtp, email)  # one for the series, not one each
    assert mail["X-Slotwise-Kind"] == kind
    link = MANAGE_LINK.search(_text(mail))
    assert link is not None, _text(mail)
    assert link.group(0) in _html(mail)
    token = link.group(1)
    assert token == booked["manage_token"]
    # The provider's notice carries no link.
    (notice,) = [m for m in smtp.inbox.messages if m["To"] != email]
    assert notice["X-Slotwise-Kind"] == "series_received"
    assert MANAGE_LINK.search(_text(notice)) is None
    # The mailed token manages the series: read it, cut it short from the second occurrence.
    read = await client.get(f"/bookings/series/{token}")
    assert read.status_code == 200, read.text
    assert read.json()["id"] == booked["id"]
    second = booked["occurrences"][1]["id"]
    cut = await client.post(
        f"/bookings/series/{token}/cancel", json={"from_appointment_id": second}
    )
    assert cut.status_code == 200, cut.text
    assert [o["status"] for o in cut.json()["occurrences"]] == [
        "pending" if requires_confirmation else "confirmed",
        "cancelled",
        "cancelled",
    ]


async def test_a_replayed_series_keeps_the_mailed_link_working(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    """Where the link is mailed, a replay shows no token and does not replace the mailed
    one (as a single booking's replay)."""
    _, provider = await bookable_provider(client)
    email = unique_email("gia")
    headers = {"Idempotency-Key": "term-plan"}
    first = await client.post(
        "/appointments/series", json=_series(provider, email), headers=headers
    )
    again = await client.post(
        "/appointments/series", json=_series(provider, email), headers=headers
    )
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["manage_token"] is None
    link = MANAGE_LINK.search(_text(await _mailed(worker, clock, smtp, email)))
    assert link is not None
    assert link.group(1) == first.json()["manage_token"]
    assert (await client.get(f"/bookings/series/{link.group(1)}")).status_code == 200


def test_the_series_link_has_a_setting_of_its_own() -> None:
    """Unset, the booking's link with series/ before the token (the API's own paths)."""
    url = "sqlite+aiosqlite:///:memory:"
    assert make_settings(url, guest_manage_url=MANAGE).series_manage_url == (
        "https://book.example.com/manage/series/{token}"
    )
    own = "https://book.example.com/series?t={token}"
    both = make_settings(url, guest_manage_url=MANAGE, guest_series_manage_url=own)
    assert both.series_manage_url == own
    assert make_settings(url).series_manage_url == ""  # no link is mailed
    with pytest.raises(ValidationError, match="guest_series_manage_url"):
        make_settings(url, guest_series_manage_url="https://book.example.com/series")


# -- held until the guest verifies the email ------------------------------------------------


async def test_one_link_keeps_every_held_occurrence(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    provider = await _verifying_provider(client, requires_confirmation=False)
    email = unique_email("gia")
    booked = await _book_series(client, provider, email)
    occurrences = booked["occurrences"]
    assert [o["status"] for o in occurrences] == ["pending_verification"] * 3
    hold_until = {datetime.fromisoformat(o["hold_until"]) for o in occurrences}
    assert hold_until == {clock.now + timedelta(minutes=15)}  # one hold for all
    assert booked["manage_token"]
    # One message, to the guest only: the series' one verification link (and its manage link).
    mail = await _mailed(worker, clock, smtp, email)
    assert mail["X-Slotwise-Kind"] == "series_verify"
    assert len(smtp.inbox.messages) == 1  # the provider hears of it once it is kept
    assert MANAGE_LINK.search(_text(mail)) is not None
    for day in (3, 10, 17):  # every occurrence is listed
        assert f"Wednesday {day} March 2027, 10:00 UTC" in _text(mail)
    path = _verify_path(mail)
    page = await client.get(path)  # what a mail scanner does: nothing changes
    assert page.status_code == 200
    assert "Keep your series" in page.text
    assert '<form method="post">' in page.text
    read = await client.get(f"/bookings/series/{booked['manage_token']}")
    assert {o["status"] for o in read.json()["occurrences"]} == {"pending_verification"}
    verified = await client.post(path)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["id"] == booked["id"]
    assert [o["status"] for o in body["occurrences"]] == ["confirmed"] * 3
    assert {o["hold_until"] for o in body["occurrences"]} == {None}
    for occurrence in body["occurrences"]:
        assert [e["action"] for e in occurrence["history"]] == ["created", "email_verified"]
    # Now the series' messages, once per party; reminders per occurrence.
    await worker.run_until_idle(now=clock.now)
    (provider_email,) = {str(m["To"]) for m in smtp.inbox.messages if m["To"] != email}
    assert smtp.inbox.kinds() == sorted(
        [
            (email, "series_confirmed"),
            (email, "series_verify"),
            (provider_email, "series_received"),
        ]
    )
    reminders = await worker.run_until_idle(now=clock.now + timedelta(days=30))
    assert reminders.sent == 3  # one an hour before each occurrence
    again = await client.post(path, headers={"Accept": "text/html"})  # a second click
    assert again.status_code == 200
    assert "is kept" in again.text
    clock.now += timedelta(hours=1)  # kept: no longer held, so never released
    taken = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{WEEKS[1]}T10:00:00Z")
    )
    assert code(taken) == "slot_unavailable"


async def test_held_occurrences_block_others_until_kept_or_released(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    provider = await _verifying_provider(client)
    kim = await signed_in(client)
    assert "10:00" in await starts(client, provider, WEEKS[1])
    await _book_series(client, provider, unique_email("gia"))
    for week in WEEKS:
        assert "10:00" not in await starts(client, provider, week)  # held: not offered
    single = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{WEEKS[1]}T10:00:00Z")
    )
    assert code(single) == "slot_unavailable"
    theirs = await client.post(
        "/appointments/series",
        headers=kim.headers,
        json={"provider_id": provider["id"], "start_datetime": f"{FIRST}T10:00:00", "count": 2},
    )
    assert code(theirs) == "series_unavailable"
    held = await client.post(
        "/holds", json={"provider_id": provider["id"], "start_datetime": f"{WEEKS[2]}T10:00:00"}
    )
    assert code(held) == "slot_unavailable"
    # The hold ends: every occurrence's time is free at once, with no job and no write.
    clock.now += timedelta(minutes=15)
    for week in WEEKS:
        assert "10:00" in await starts(client, provider, week)
    theirs = await client.post(
        "/appointments/series",
        headers=kim.headers,
        json={"provider_id": provider["id"], "start_datetime": f"{FIRST}T10:00:00", "count": 2},
    )
    assert theirs.status_code == 201, theirs.text


async def test_an_expired_link_keeps_nothing(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    provider = await _verifying_provider(client)
    email = unique_email("gia")
    booked = await _book_series(client, provider, email)
    path = _verify_path(await _mailed(worker, clock, smtp, email))
    clock.now += timedelta(minutes=15)
    late = await client.post(path)  # ended, not yet released by any write
    assert late.status_code == 409
    assert code(late) == "verification_expired"
    # A booking of the provider releases the lapsed occurrences (each cancelled, with its
    # history), and takes one of their times.
    another = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{WEEKS[0]}T10:00:00Z")
    )
    assert another.status_code == 201, another.text
    assert code(await client.post(path)) == "verification_expired"
    read = (await client.get(f"/bookings/series/{booked['manage_token']}")).json()
    assert {o["status"] for o in read["occurrences"]} == {"cancelled"}
    assert {o["history"][-1]["reason"] for o in read["occurrences"]} == {
        "The guest did not verify their email in time."
    }
    # Nothing more was sent for the series: to the provider, a reminder, a confirmation.
    await worker.run_until_idle(now=clock.now + timedelta(days=30))
    assert [m["X-Slotwise-Kind"] for m in smtp.inbox.to(email)] == ["series_verify"]
    assert {m["X-Slotwise-Kind"] for m in smtp.inbox.messages} == {
        "series_verify",
        "booking_verify",  # the other guest's booking, held too
    }


async def test_a_wrong_token_or_a_cancelled_series_verifies_nothing(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    provider = await _verifying_provider(client)
    email = unique_email("gia")
    booked = await _book_series(client, provider, email)
    path = _verify_path(await _mailed(worker, clock, smtp, email))
    unknown = await client.post("/bookings/series/verify/" + "x" * 43)
    assert unknown.status_code == 404
    assert code(unknown) == "series_not_found"
    # The manage token, shown to whoever booked, cannot verify; nor can a booking's link.
    assert code(await client.post(f"/bookings/series/verify/{booked['manage_token']}")) == (
        "series_not_found"
    )
    assert code(await client.post(path.replace("/series/verify/", "/verify/"))) == (
        "appointment_not_found"
    )
    # A guest may cancel the held series; its link then keeps nothing.
    cancelled = await client.post(f"/bookings/series/{booked['manage_token']}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    assert {o["status"] for o in cancelled.json()["occurrences"]} == {"cancelled"}
    assert code(await client.post(path)) == "invalid_transition"
    assert "10:00" in await starts(client, provider, WEEKS[0])


async def test_skip_holds_the_free_occurrences_and_the_link_keeps_them(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    provider = await _verifying_provider(client, requires_confirmation=True)
    taken = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{WEEKS[1]}T10:00:00Z")
    )
    assert taken.status_code == 201, taken.text
    email = unique_email("gia")
    booked = await _book_series(client, provider, email, on_conflict="skip")
    assert [o["start_at"][:10] for o in booked["occurrences"]] == [WEEKS[0], WEEKS[2]]
    assert [s["code"] for s in booked["skipped"]] == ["slot_unavailable"]
    verified = await client.post(_verify_path(await _mailed(worker, clock, smtp, email)))
    assert verified.status_code == 200, verified.text
    assert [o["status"] for o in verified.json()["occurrences"]] == ["pending", "pending"]
    await worker.run_until_idle(now=clock.now)
    assert (email, "series_pending") in smtp.inbox.kinds()
