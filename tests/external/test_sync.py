"""Busy time in from an iCalendar URL served by a real HTTP server on loopback: fetched
through the outbound guard with conditional requests, stored only when it changed, kept
when a sync fails; it blocks listings and bookings exactly as an appointment does."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from slotwise.main import create_app
from tests.conftest import make_settings
from tests.external.conftest import CALENDAR_SETTINGS
from tests.external.helpers import (
    connect,
    new_york_provider,
    rules_version,
    slot_times,
    stored_busy,
    sync,
)
from tests.external.ics_server import FILES, CalendarServer
from tests.factories import Clock, signed_in

WEEKLY = [
    ("2027-03-02T15:00", "2027-03-02T16:00"),
    ("2027-03-10T19:00", "2027-03-10T20:00"),
    ("2027-03-23T14:00", "2027-03-23T15:00"),
    ("2027-03-30T14:00", "2027-03-30T15:00"),
]


async def test_a_synced_calendar_blocks_slots_and_bookings(
    client: httpx.AsyncClient, app: FastAPI, calendar_server: CalendarServer, clock: Clock
) -> None:
    account, profile = await new_york_provider(client)
    handle = profile["public_handle"]
    assert "10:00" in await slot_times(client, handle, "2027-03-02")
    calendar = await connect(client, account, calendar_server.serve("weekly_dst.ics"))
    synced = await sync(client, account, calendar["id"])
    assert synced["sync_status"] == "ok"
    assert synced["event_count"] == 4
    assert synced["last_success_at"].startswith("2027-03-01T12:00:00")
    assert synced["last_error"] is None
    assert await stored_busy(app, calendar["id"]) == WEEKLY
    # Tuesday 10:00-11:00 New York is taken; the moved one takes Wednesday 14:00.
    assert "10:00" not in await slot_times(client, handle, "2027-03-02")
    assert "14:00" not in await slot_times(client, handle, "2027-03-10")
    assert "10:00" in await slot_times(client, handle, "2027-03-09")  # moved away
    assert "10:00" in await slot_times(client, handle, "2027-03-16")  # removed (EXDATE)
    client_account = await signed_in(client)
    refused = await client.post(
        "/appointments/",
        headers=client_account.headers,
        json={"provider_id": profile["id"], "start_datetime": "2027-03-02T10:00:00"},
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "calendar_busy"
    booked = await client.post(
        "/appointments/",
        headers=client_account.headers,
        json={"provider_id": profile["id"], "start_datetime": "2027-03-02T11:00:00"},
    )
    assert booked.status_code == 201, booked.text


async def test_busy_time_blocks_with_the_services_buffers(
    client: httpx.AsyncClient, app: FastAPI, calendar_server: CalendarServer, clock: Clock
) -> None:
    account, profile = await new_york_provider(client)
    service = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Buffered", "duration_minutes": 60, "buffer_after_minutes": 15},
    )
    service_id = service.json()["id"]
    calendar = await connect(client, account, calendar_server.serve("weekly_dst.ics"))
    await sync(client, account, calendar["id"])
    listed = await client.get(
        f"/providers/{profile['public_handle']}/slots",
        params={"date": "2027-03-02", "service": service_id},
    )
    starts = [slot["start_at"][11:16] for slot in listed.json()["slots"]]
    assert "09:00" not in starts  # 09:00-10:00 and its 15 minutes after reach the meeting
    assert "11:00" in starts
    refused = await client.post(
        "/appointments/",
        headers=(await signed_in(client)).headers,
        json={
            "provider_id": profile["id"],
            "service_id": service_id,
            "start_datetime": "2027-03-02T09:00:00",
        },
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "calendar_busy")


async def test_an_unchanged_calendar_is_asked_conditionally_and_writes_nothing(
    client: httpx.AsyncClient, app: FastAPI, calendar_server: CalendarServer, clock: Clock
) -> None:
    account, profile = await new_york_provider(client)
    calendar = await connect(client, account, calendar_server.serve("weekly_dst.ics"))
    await sync(client, account, calendar["id"])
    version = await rules_version(app, profile["id"])
    assert "if-none-match" not in calendar_server.asked[0]
    again = await sync(client, account, calendar["id"])
    asked = calendar_server.asked[-1]
    assert asked["if-none-match"].startswith('"')
    assert asked["if-modified-since"] == "Mon, 01 Feb 2027 00:00:00 GMT"
    assert again["sync_status"] == "ok"
    assert again["event_count"] == 4
    assert await stored_busy(app, calendar["id"]) == WEEKLY
    assert await rules_version(app, profile["id"]) == version  # kept terms stay kept


async def test_a_changed_calendar_replaces_only_what_changed(
    client: httpx.AsyncClient, app: FastAPI, calendar_server: CalendarServer, clock: Clock
) -> None:
    account, profile = await new_york_provider(client)
    url = calendar_server.serve("mine.ics", "weekly_dst.ics")
    calendar = await connect(client, account, url)
    await sync(client, account, calendar["id"])
    version = await rules_version(app, profile["id"])
    calendar_server.serve("mine.ics", "all_day.ics")
    changed = await sync(client, account, calendar["id"])
    assert changed["event_count"] == 1
    assert await stored_busy(app, calendar["id"]) == [("2027-03-05T05:00", "2027-03-06T05:00")]
    assert await rules_version(app, profile["id"]) > version
    assert await slot_times(client, profile["public_handle"], "2027-03-05") == []
    assert "10:00" in await slot_times(client, profile["public_handle"], "2027-03-02")


@pytest.mark.parametrize(
    ("trouble", "error"),
    [
        ("malformed", "not an iCalendar document"),
        ("server error", "HTTP 500"),
        ("not found", "HTTP 404"),
        ("redirect", "a redirect (not followed)"),
    ],
)
async def test_a_failed_sync_records_why_and_keeps_the_last_good_busy_time(
    client: httpx.AsyncClient,
    app: FastAPI,
    calendar_server: CalendarServer,
    clock: Clock,
    trouble: str,
    error: str,
) -> None:
    account, profile = await new_york_provider(client)
    calendar = await connect(client, account, calendar_server.serve("mine.ics", "weekly_dst.ics"))
    good = await sync(client, account, calendar["id"])
    version = await rules_version(app, profile["id"])
    if trouble == "malformed":
        calendar_server.serve("mine.ics", "malformed.ics")
    elif trouble == "server error":
        calendar_server.status = 500
    elif trouble == "not found":
        calendar_server.files.clear()
    else:
        calendar_server.status = 302
        calendar_server.location = "http://169.254.169.254/latest/meta-data/"
    clock.now = clock.now.replace(minute=10)
    failed = await sync(client, account, calendar["id"])
    assert failed["sync_status"] == "error"
    assert error in failed["last_error"]
    assert failed["failing_since"].startswith("2027-03-01T12:10:00")
    assert failed["last_success_at"] == good["last_success_at"]
    assert failed["event_count"] == 4
    assert failed["paused"] is False
    assert await stored_busy(app, calendar["id"]) == WEEKLY
    assert await rules_version(app, profile["id"]) == version
    assert "10:00" not in await slot_times(client, profile["public_handle"], "2027-03-02")
    calendar_server.status = None
    calendar_server.serve("mine.ics", "weekly_dst.ics")
    healed = await sync(client, account, calendar["id"])
    assert healed["sync_status"] == "ok"
    assert healed["failing_since"] is None
    assert healed["last_error"] is None


async def test_the_size_cap_and_the_guard_hold_for_calendars(
    database_url: str, calendar_server: CalendarServer
) -> None:
    big = (FILES / "weekly_dst.ics").read_bytes().replace(b"SUMMARY:", b"SUMMARY:" + b"x" * 2000)
    small = make_settings(database_url, **{**CALENDAR_SETTINGS, "calendar_max_bytes": 2048})
    # No allowance for loopback: a name that resolves there is refused when the sync calls.
    guarded = make_settings(
        database_url, calendar_keys=CALENDAR_SETTINGS["calendar_keys"], outbound_allow_http=True
    )
    cases = (
        (small, calendar_server.serve("big.ics", body=big), "larger than 2048 bytes"),
        (
            guarded,
            calendar_server.serve("weekly_dst.ics").replace("127.0.0.1", "localhost"),
            "refused: localhost resolves to",
        ),
    )
    for settings, url, error in cases:
        app = create_app(settings)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
                account, _profile = await new_york_provider(c)
                calendar = await connect(c, account, url)
                failed = await sync(c, account, calendar["id"])
                assert failed["sync_status"] == "error"
                assert error in failed["last_error"], failed["last_error"]
                assert await stored_busy(app, calendar["id"]) == []
        finally:
            await app.state.slotwise.aclose()
    assert [asked["path"] for asked in calendar_server.asked] == ["/big.ics"]


async def test_another_providers_calendar_cannot_be_synced(
    client: httpx.AsyncClient, calendar_server: CalendarServer, clock: Clock
) -> None:
    owner, _ = await new_york_provider(client)
    other, _ = await new_york_provider(client)
    calendar = await connect(client, owner, calendar_server.serve("weekly_dst.ics"))
    path = f"/providers/me/calendars/{calendar['id']}/sync"
    answer = await client.post(path, headers=other.headers)
    assert (answer.status_code, answer.json()["code"]) == (404, "calendar_not_found")
    assert (await client.post(path)).status_code == 401
    assert calendar_server.asked == []


async def test_a_disconnected_calendar_takes_its_busy_time_with_it(
    client: httpx.AsyncClient, app: FastAPI, calendar_server: CalendarServer, clock: Clock
) -> None:
    account, profile = await new_york_provider(client)
    calendar = await connect(client, account, calendar_server.serve("weekly_dst.ics"))
    await sync(client, account, calendar["id"])
    assert "10:00" not in await slot_times(client, profile["public_handle"], "2027-03-02")
    gone = await client.delete(f"/providers/me/calendars/{calendar['id']}", headers=account.headers)
    assert gone.status_code == 204
    assert await stored_busy(app, calendar["id"]) == []
    assert "10:00" in await slot_times(client, profile["public_handle"], "2027-03-02")
