"""Every .ics served is parsed back with icalendar; feeds rotate and revoke."""

from __future__ import annotations

from datetime import timedelta

import httpx
import icalendar

from slotwise.config import Settings
from tests.factories import Account, Clock, bookable_provider, login, signed_in, signed_in_admin

START = "2027-03-02T10:00:00Z"


def _parse(response: httpx.Response) -> icalendar.Calendar:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(response.content)
    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"]
    return calendar


async def _booked(client: httpx.AsyncClient) -> tuple[Account, Account, dict[str, object]]:
    provider, profile = await bookable_provider(client, requires_confirmation=True)
    customer = await signed_in(client)
    response = await client.post(
        "/appointments/",
        headers=customer.headers,
        json={"provider_id": profile["id"], "start_datetime": START, "notes": "Bring notes"},
    )
    assert response.status_code == 201, response.text
    return provider, customer, response.json()


async def test_export_one_is_valid_and_follows_the_status(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider, customer, appointment = await _booked(client)
    url = f"/appointments/{appointment['id']}/export.ics"
    event = _parse(await client.get(url, headers=customer.headers)).walk("VEVENT")[0]
    assert str(event["UID"]) == f"{appointment['id']}@slotwise"
    assert str(event["STATUS"]) == "TENTATIVE"
    assert int(event["SEQUENCE"]) == 0
    assert event.decoded("DTSTART").isoformat() == "2027-03-02T10:00:00+00:00"
    assert event.decoded("DTEND").isoformat() == "2027-03-02T11:00:00+00:00"
    assert event.decoded("DTSTAMP") == clock.now
    assert str(event["ORGANIZER"]) == f"mailto:{provider.email}"
    assert str(event["ATTENDEE"]) == f"mailto:{customer.email}"
    assert "Bring notes" in str(event["DESCRIPTION"])
    assert str(event["SUMMARY"]).startswith("Appointment with")

    response = await client.patch(
        f"/appointments/{appointment['id']}/status",
        headers=provider.headers,
        json={"status": "confirmed"},
    )
    assert response.status_code == 200, response.text
    event = _parse(await client.get(url, headers=provider.headers)).walk("VEVENT")[0]
    assert (str(event["STATUS"]), int(event["SEQUENCE"])) == ("CONFIRMED", 1)


async def test_export_of_someone_elses_appointment_is_404(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, _, appointment = await _booked(client)
    stranger = await signed_in(client)
    response = await client.get(
        f"/appointments/{appointment['id']}/export.ics", headers=stranger.headers
    )
    assert response.status_code == 404
    response = await client.get(f"/appointments/{appointment['id']}/export.ics")
    assert response.status_code == 401


async def test_export_all_lists_the_users_appointments(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider, customer, appointment = await _booked(client)
    for account in (provider, customer):
        events = _parse(
            await client.get("/appointments/export-all.ics", headers=account.headers)
        ).walk("VEVENT")
        assert [str(e["UID"]) for e in events] == [f"{appointment['id']}@slotwise"]
    stranger = await signed_in(client)
    calendar = _parse(await client.get("/appointments/export-all.ics", headers=stranger.headers))
    assert calendar.walk("VEVENT") == []


async def test_feed_is_served_without_login_and_rotation_revokes_the_old_url(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, customer, appointment = await _booked(client)
    created = await client.post("/users/me/calendar-feed", headers=customer.headers)
    assert created.status_code == 201, created.text
    url = created.json()["url"]
    assert url.startswith("http://127.0.0.1:8000/api/v1/calendar/feeds/")
    path = url.removeprefix("http://127.0.0.1:8000/api/v1")
    token = path.removeprefix("/calendar/feeds/").removesuffix(".ics")
    assert len(token) >= 22  # at least 128 bits, base64url
    events = _parse(await client.get(path)).walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [f"{appointment['id']}@slotwise"]

    rotated = await client.post("/users/me/calendar-feed", headers=customer.headers)
    new_path = rotated.json()["url"].removeprefix("http://127.0.0.1:8000/api/v1")
    assert new_path != path
    assert (await client.get(path)).status_code == 404
    _parse(await client.get(new_path))

    revoked = await client.delete("/users/me/calendar-feed", headers=customer.headers)
    assert revoked.status_code == 204
    assert (await client.get(new_path)).status_code == 404
    assert (await client.get("/calendar/feeds/" + "x" * 43 + ".ics")).status_code == 404


async def test_feed_leaves_out_the_distant_past(client: httpx.AsyncClient, clock: Clock) -> None:
    _, customer, _ = await _booked(client)
    path = (await client.post("/users/me/calendar-feed", headers=customer.headers)).json()["url"]
    path = path.removeprefix("http://127.0.0.1:8000/api/v1")
    clock.now += timedelta(days=200)
    assert _parse(await client.get(path)).walk("VEVENT") == []


async def test_a_demoted_provider_no_longer_sees_its_clients_in_calendars(
    client: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    """The export and the secret feed show a provider's appointments only while the account
    is a provider, as every other read does; its own bookings as a client stay."""
    provider, _, appointment = await _booked(client)
    created = await client.post("/users/me/calendar-feed", headers=provider.headers)
    path = created.json()["url"].removeprefix("http://127.0.0.1:8000/api/v1")
    assert [str(e["UID"]) for e in _parse(await client.get(path)).walk("VEVENT")] == [
        f"{appointment['id']}@slotwise"
    ]
    admin = await signed_in_admin(client, settings)
    demoted = await client.patch(
        f"/users/{provider.id}", headers=admin.headers, json={"role": "client"}
    )
    assert demoted.status_code == 200, demoted.text

    assert _parse(await client.get(path)).walk("VEVENT") == []
    again = await login(client, provider.email)
    export = await client.get(
        "/appointments/export-all.ics",
        headers={"Authorization": f"Bearer {again['access_token']}"},
    )
    assert _parse(export).walk("VEVENT") == []
