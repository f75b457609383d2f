"""Bookings out: a provider's confirmed bookings written into their CalDAV calendar on a
real Radicale server: created with the invitation's content, updated when moved, removed
when cancelled, never written twice, and not read back as busy time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from slotwise.external.models import PushedEvent
from tests.external.helpers import stored_busy, sync
from tests.external.ics_server import FILES
from tests.external.radicale_server import PASSWORD, USER, Radicale
from tests.factories import Account, Clock, bookable_provider, count_rows, signed_in

pytestmark = pytest.mark.long


async def writer(
    client: httpx.AsyncClient, radicale: Radicale
) -> tuple[Account, dict[str, Any], dict[str, Any], str]:
    """A provider who confirms bookings at once, with their Work calendar (a weekly meeting
    in it) connected to receive their bookings."""
    account, profile = await bookable_provider(
        client,
        timezone="America/New_York",
        session_duration_minutes=60,
        max_advance_days=60,
        requires_confirmation=False,
    )
    work = radicale.make_calendar("work", "Work")
    radicale.put(work, "meeting.ics", (FILES / "weekly_dst.ics").read_bytes())
    body = {
        "kind": "caldav",
        "server_url": radicale.url,
        "username": USER,
        "password": PASSWORD,
        "calendar_url": work,
        "write_bookings": True,
    }
    made = await client.post("/providers/me/calendars", headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    return account, profile, made.json(), work


async def book(client: httpx.AsyncClient, profile: dict[str, Any], at: str) -> dict[str, Any]:
    booker = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["id"], "start_datetime": at},
    )
    assert booked.status_code == 201, booked.text
    appointment: dict[str, Any] = booked.json()
    return appointment


def lines(text: str, *names: str) -> list[str]:
    return [line for line in text.replace("\r\n", "\n").split("\n") if line.startswith(names)]


async def test_a_booking_is_written_moved_and_removed_and_never_read_back(
    client: httpx.AsyncClient, app: FastAPI, radicale: Radicale, clock: Clock
) -> None:
    account, profile, calendar, work = await writer(client, radicale)
    appointment = await book(client, profile, "2027-03-03T11:00:00")
    assert appointment["status"] == "confirmed"
    resource = f"{appointment['id']}%40slotwise.ics"
    synced = await sync(client, account, calendar["id"])
    assert synced["last_push_error"] is None
    assert synced["last_push_at"] is not None
    assert radicale.names(work) == sorted([resource, "meeting.ics"])
    written = radicale.read(work, resource)
    exported = await client.get(
        f"/appointments/{appointment['id']}/export.ics", headers=account.headers
    )
    for name in ("UID", "DTSTART", "DTEND", "SUMMARY", "STATUS", "SEQUENCE"):
        assert lines(written, name) == lines(exported.text, name), name
    assert account.email in lines(written, "ORGANIZER")[0]
    assert lines(written, "UID") == [f"UID:{appointment['id']}@slotwise"]
    # Its own event is not busy time twice: the meeting's four, nothing of the booking's.
    assert synced["event_count"] == 4
    assert ("2027-03-03T16:00", "2027-03-03T17:00") not in await stored_busy(app, calendar["id"])

    clock.now += timedelta(minutes=5)  # a sync with nothing new writes nothing
    await sync(client, account, calendar["id"])
    assert radicale.read(work, resource) == written

    moved = await client.post(
        f"/appointments/{appointment['id']}/reschedule",
        headers=account.headers,
        json={"new_start_time": "2027-03-04T15:00:00"},
    )
    assert moved.status_code == 200, moved.text
    await sync(client, account, calendar["id"])
    assert radicale.names(work) == sorted([resource, "meeting.ics"])  # the same resource
    exported = await client.get(
        f"/appointments/{appointment['id']}/export.ics", headers=account.headers
    )
    rewritten = radicale.read(work, resource)
    for name in ("UID", "DTSTART", "DTEND", "SEQUENCE"):
        assert lines(rewritten, name) == lines(exported.text, name), name
    assert lines(rewritten, "DTSTART") != lines(written, "DTSTART")

    cancelled = await client.post(
        f"/appointments/{appointment['id']}/cancel", headers=account.headers, json={}
    )
    assert cancelled.status_code == 200, cancelled.text
    await sync(client, account, calendar["id"])
    assert radicale.names(work) == ["meeting.ics"]
    assert await count_rows(app, PushedEvent) == 0


async def test_pending_bookings_wait_for_confirmation_and_failures_are_retried(
    client: httpx.AsyncClient, app: FastAPI, radicale: Radicale, clock: Clock
) -> None:
    account, profile, calendar, work = await writer(client, radicale)
    await client.put("/providers/me", headers=account.headers, json={"requires_confirmation": True})
    pending = await book(client, profile, "2027-03-03T11:00:00")
    assert pending["status"] == "pending"
    await sync(client, account, calendar["id"])
    assert radicale.names(work) == ["meeting.ics"]
    with radicale.client() as dav:  # the calendar goes away on the server
        assert dav.delete(work).status_code in (200, 204)
    confirmed = await client.patch(
        f"/appointments/{pending['id']}/status",
        headers=account.headers,
        json={"status": "confirmed"},
    )
    assert confirmed.status_code == 200, confirmed.text
    failed = await sync(client, account, calendar["id"])
    assert failed["last_push_error"] is not None
    assert await count_rows(app, PushedEvent) == 0
    radicale.make_calendar("work", "Work")  # back: the next sync writes what it could not
    healed = await sync(client, account, calendar["id"])
    assert healed["last_push_error"] is None
    assert radicale.names(work) == [f"{pending['id']}%40slotwise.ics"]
    assert await count_rows(app, PushedEvent) == 1
