"""Busy time in from a CalDAV calendar on a real Radicale server on loopback: found by URL,
by display name or as the account's first, read through the outbound guard."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from slotwise.main import create_app
from tests.conftest import make_settings
from tests.external.conftest import KEYS
from tests.external.helpers import new_york_provider, slot_times, stored_busy, sync
from tests.external.ics_server import FILES
from tests.external.radicale_server import PASSWORD, USER, Radicale
from tests.factories import Account, Clock, signed_in

pytestmark = pytest.mark.long


async def connect_caldav(
    client: httpx.AsyncClient, account: Account, radicale: Radicale, **extra: object
) -> dict[str, object]:
    body = {
        "kind": "caldav",
        "server_url": radicale.url,
        "username": USER,
        "password": PASSWORD,
        **extra,
    }
    made = await client.post("/providers/me/calendars", headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    created: dict[str, object] = made.json()
    return created


@pytest.mark.parametrize("found_by", ["url", "name", "first"])
async def test_a_caldav_calendar_blocks_slots_and_bookings(
    client: httpx.AsyncClient, app: FastAPI, radicale: Radicale, clock: Clock, found_by: str
) -> None:
    work = radicale.make_calendar("work", "Work")
    radicale.put(work, "meeting.ics", (FILES / "weekly_dst.ics").read_bytes())
    radicale.put(work, "conference.ics", (FILES / "all_day.ics").read_bytes())
    if found_by != "first":
        other = radicale.make_calendar("zz-other", "Other")
        radicale.put(other, "floating.ics", (FILES / "floating.ics").read_bytes())
    which = {"url": {"calendar_url": work}, "name": {"calendar_name": "Work"}, "first": {}}
    account, profile = await new_york_provider(client)
    calendar = await connect_caldav(client, account, radicale, **which[found_by])
    synced = await sync(client, account, str(calendar["id"]))
    assert synced["sync_status"] == "ok", synced["last_error"]
    assert synced["event_count"] == 5
    assert await stored_busy(app, str(calendar["id"])) == [
        ("2027-03-02T15:00", "2027-03-02T16:00"),
        ("2027-03-05T05:00", "2027-03-06T05:00"),
        ("2027-03-10T19:00", "2027-03-10T20:00"),
        ("2027-03-23T14:00", "2027-03-23T15:00"),
        ("2027-03-30T14:00", "2027-03-30T15:00"),
    ]
    handle = profile["public_handle"]
    assert "10:00" not in await slot_times(client, handle, "2027-03-02")
    assert await slot_times(client, handle, "2027-03-05") == []
    refused = await client.post(
        "/appointments/",
        headers=(await signed_in(client)).headers,
        json={"provider_id": profile["id"], "start_datetime": "2027-03-10T14:00:00"},
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "calendar_busy")
    # An event deleted on the server frees its time at the next sync.
    radicale.delete(work, "conference.ics")
    again = await sync(client, account, str(calendar["id"]))
    assert again["event_count"] == 4
    assert "10:00" in await slot_times(client, handle, "2027-03-05")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"password": "wrong-password"}, "refused the username or password"),
        ({"calendar_name": "Nope"}, "no such calendar on the server"),
    ],
)
async def test_a_caldav_failure_is_recorded(
    client: httpx.AsyncClient,
    radicale: Radicale,
    clock: Clock,
    change: dict[str, str],
    error: str,
) -> None:
    radicale.make_calendar("work", "Work")
    account, _profile = await new_york_provider(client)
    calendar = await connect_caldav(client, account, radicale, **change)
    failed = await sync(client, account, str(calendar["id"]))
    assert failed["sync_status"] == "error"
    assert error in failed["last_error"], failed["last_error"]


async def test_caldav_goes_through_the_guard(database_url: str, radicale: Radicale) -> None:
    """Without the operator's allowance for loopback, a server that resolves there is not
    called at all."""
    settings = make_settings(database_url, calendar_keys=KEYS, outbound_allow_http=True)
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
            account, _profile = await new_york_provider(c)
            local = Radicale(radicale.port)
            body = {
                "kind": "caldav",
                "server_url": local.url.replace("127.0.0.1", "localhost"),
                "username": USER,
                "password": PASSWORD,
            }
            made = await c.post("/providers/me/calendars", headers=account.headers, json=body)
            failed = await sync(c, account, made.json()["id"])
            assert failed["sync_status"] == "error"
            assert "refused: localhost resolves to" in failed["last_error"]
    finally:
        await app.state.slotwise.aclose()
