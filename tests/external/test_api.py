"""Connecting, reading and disconnecting calendars: provider-only, another provider's is 404,
credentials sealed at rest and never shown, no key no connection."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.config import Settings
from slotwise.external.keys import CalendarKeys, UnreadableSecret, new_key
from slotwise.external.models import ExternalCalendar
from slotwise.main import create_app
from tests.conftest import make_settings
from tests.external.conftest import KEYS
from tests.factories import count_rows, provider_with_profile, signed_in

SECRET_URL = "https://calendar.example.com/ical/a-secret-token-0123456789/basic.ics"
ICS = {"kind": "ics_url", "url": SECRET_URL, "name": "Personal"}
CALDAV = {
    "kind": "caldav",
    "server_url": "https://dav.example.com/",
    "username": "nora",
    "password": "app-password-123",
    "calendar_name": "Work",
}


async def _stored(app: FastAPI, calendar_id: str) -> ExternalCalendar:
    async with app.state.slotwise.db.session(writes=False) as session:
        found = await session.scalar(
            select(ExternalCalendar).where(ExternalCalendar.id == uuid.UUID(calendar_id))
        )
        assert found is not None
        return found


async def test_an_ics_calendar_is_connected_sealed_and_shown_by_its_host_only(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account, _profile = await provider_with_profile(client)
    made = await client.post("/providers/me/calendars", headers=account.headers, json=ICS)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["kind"] == "ics_url"
    assert body["host"] == "calendar.example.com"
    assert body["name"] == "Personal"
    assert body["tentative_busy"] is True
    assert body["sync_status"] == "pending"
    assert body["paused"] is False
    assert body["event_count"] == 0
    assert body["next_sync_at"] is not None
    assert "secret-token" not in made.text
    stored = await _stored(app, body["id"])
    assert "secret-token" not in stored.secret
    assert CalendarKeys(KEYS).open(stored.secret) == {"url": SECRET_URL}
    listed = await client.get("/providers/me/calendars", headers=account.headers)
    assert [one["id"] for one in listed.json()] == [body["id"]]
    assert "secret-token" not in listed.text
    one = await client.get(f"/providers/me/calendars/{body['id']}", headers=account.headers)
    assert one.status_code == 200
    assert one.json() == body


async def test_a_webcal_address_is_read_over_https(client: httpx.AsyncClient, app: FastAPI) -> None:
    account, _profile = await provider_with_profile(client)
    webcal = {**ICS, "url": "webcal://p01-caldav.example.com/published/2/secret"}
    made = await client.post("/providers/me/calendars", headers=account.headers, json=webcal)
    assert made.status_code == 201, made.text
    stored = await _stored(app, made.json()["id"])
    assert CalendarKeys(KEYS).open(stored.secret)["url"].startswith("https://p01-caldav.")


async def test_a_caldav_calendar_keeps_its_password_sealed(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account, _profile = await provider_with_profile(client)
    made = await client.post("/providers/me/calendars", headers=account.headers, json=CALDAV)
    assert made.status_code == 201, made.text
    assert made.json()["host"] == "dav.example.com"
    assert "app-password" not in made.text
    assert "nora" not in made.text
    stored = await _stored(app, made.json()["id"])
    assert "app-password" not in stored.secret
    assert CalendarKeys(KEYS).open(stored.secret)["password"] == "app-password-123"


async def test_only_one_calendar_receives_the_bookings(client: httpx.AsyncClient) -> None:
    account, _profile = await provider_with_profile(client)
    writer = {**CALDAV, "write_bookings": True}
    first = await client.post("/providers/me/calendars", headers=account.headers, json=writer)
    assert first.status_code == 201, first.text
    assert first.json()["write_bookings"] is True
    second = await client.post("/providers/me/calendars", headers=account.headers, json=writer)
    assert second.status_code == 409
    assert second.json()["code"] == "write_calendar_taken"
    reader = await client.post("/providers/me/calendars", headers=account.headers, json=CALDAV)
    assert reader.status_code == 201


async def test_another_providers_calendar_is_not_found(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner, _ = await provider_with_profile(client)
    other, _ = await provider_with_profile(client)
    made = await client.post("/providers/me/calendars", headers=owner.headers, json=ICS)
    path = f"/providers/me/calendars/{made.json()['id']}"
    for method in ("GET", "DELETE"):
        answer = await client.request(method, path, headers=other.headers)
        assert answer.status_code == 404, method
        assert answer.json()["code"] == "calendar_not_found"
    assert (await client.get("/providers/me/calendars", headers=other.headers)).json() == []
    assert await count_rows(app, ExternalCalendar) == 1
    gone = await client.delete(path, headers=owner.headers)
    assert gone.status_code == 204
    assert await count_rows(app, ExternalCalendar) == 0
    assert (await client.get(path, headers=owner.headers)).status_code == 404


async def test_calendars_are_a_providers(client: httpx.AsyncClient) -> None:
    customer = await signed_in(client, "client")
    answer = await client.post("/providers/me/calendars", headers=customer.headers, json=ICS)
    assert answer.status_code == 403
    assert answer.json()["code"] == "not_a_provider"
    assert (await client.get("/providers/me/calendars")).status_code == 401
    no_profile = await signed_in(client, "provider")
    answer = await client.get("/providers/me/calendars", headers=no_profile.headers)
    assert answer.status_code == 404
    assert answer.json()["code"] == "provider_profile_missing"


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({**ICS, "url": "ftp://calendar.example.com/x.ics"}, "url", "scheme"),
        ({**ICS, "url": "https://10.1.2.3/x.ics"}, "url", "private"),
        ({**ICS, "url": "https://169.254.169.254/latest"}, "url", "metadata"),
        ({**ICS, "url": "https://user:pw@calendar.example.com/x.ics"}, "url", "credentials"),
        ({**CALDAV, "server_url": "https://192.168.1.1/dav/"}, "server_url", "private"),
        ({**CALDAV, "calendar_url": "https://[::1]/cal/"}, "calendar_url", "loopback"),
    ],
)
async def test_an_address_slotwise_may_not_call_is_refused(
    client: httpx.AsyncClient, app: FastAPI, body: dict[str, Any], field: str, reason: str
) -> None:
    account, _profile = await provider_with_profile(client)
    answer = await client.post("/providers/me/calendars", headers=account.headers, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["code"] == "calendar_url_refused"
    assert error["details"]["field"] == field
    assert reason in error["details"]["reason"]
    assert await count_rows(app, ExternalCalendar) == 0


async def test_malformed_bodies_are_422(client: httpx.AsyncClient) -> None:
    account, _profile = await provider_with_profile(client)
    for body in (
        {"url": SECRET_URL},
        {"kind": "exchange", "url": SECRET_URL},
        {**ICS, "password": "x"},
        {**CALDAV, "password": ""},
        {**ICS, "url": "https://calendar.example.com/\x00"},
    ):
        answer = await client.post("/providers/me/calendars", headers=account.headers, json=body)
        assert answer.status_code == 422, body
        assert answer.json()["code"] == "validation_error"


async def test_a_provider_connects_at_most_the_servers_limit(
    database_url: str, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url, calendar_keys=KEYS, calendar_max_per_provider=1)
    app = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
            account, _profile = await provider_with_profile(c)
            first = await c.post("/providers/me/calendars", headers=account.headers, json=ICS)
            assert first.status_code == 201
            second = await c.post("/providers/me/calendars", headers=account.headers, json=ICS)
            assert second.status_code == 409
            assert second.json()["code"] == "calendar_limit_reached"
            assert second.json()["details"] == {"max_calendars": 1}
    finally:
        await app.state.slotwise.aclose()


async def test_without_a_key_nothing_is_connected(database_url: str) -> None:
    app = create_app(make_settings(database_url))  # no SLOTWISE_CALENDAR_KEYS: it still starts
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
            account, _profile = await provider_with_profile(c)
            answer = await c.post("/providers/me/calendars", headers=account.headers, json=ICS)
            assert answer.status_code == 503
            assert answer.json()["code"] == "calendar_keys_not_configured"
            assert (await c.get("/providers/me/calendars", headers=account.headers)).json() == []
            assert await count_rows(app, ExternalCalendar) == 0
    finally:
        await app.state.slotwise.aclose()


# -- the keys -------------------------------------------------------------------------------


def test_a_rotation_reencrypts_with_the_first_key_and_old_keys_still_open() -> None:
    old, new = KEYS[1], new_key()
    sealed = CalendarKeys([old]).seal({"url": SECRET_URL})
    both = CalendarKeys([new, old])
    assert both.open(sealed) == {"url": SECRET_URL}
    rotated = both.rotate(sealed)
    assert CalendarKeys([new]).open(rotated) == {"url": SECRET_URL}
    with pytest.raises(UnreadableSecret):
        CalendarKeys([new]).open(sealed)
    with pytest.raises(UnreadableSecret):
        CalendarKeys([old]).open(rotated)


def test_a_key_that_is_not_a_fernet_key_stops_the_start(database_url: str) -> None:
    with pytest.raises(ValueError, match="Fernet key"):
        make_settings(database_url, calendar_keys="not-a-key")
    parsed: Settings = make_settings(database_url, calendar_keys=f"{KEYS[0]}, {KEYS[1]}")
    assert [key.get_secret_value() for key in parsed.calendar_keys] == KEYS


async def test_rotating_the_keys_reencrypts_every_stored_secret(
    client: httpx.AsyncClient, app: FastAPI, database_url: str
) -> None:
    from slotwise.external.rotation import rotate_all

    account, _profile = await provider_with_profile(client)
    made = await client.post("/providers/me/calendars", headers=account.headers, json=ICS)
    newest = new_key()
    assert await rotate_all(make_settings(database_url, calendar_keys=[newest, *KEYS])) == 1
    stored = await _stored(app, made.json()["id"])
    assert CalendarKeys([newest]).open(stored.secret) == {"url": SECRET_URL}
    with pytest.raises(ValueError, match="no configured key"):
        await rotate_all(make_settings(database_url, calendar_keys=[new_key()]))
