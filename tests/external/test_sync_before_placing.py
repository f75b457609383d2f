"""SLOTWISE_CALENDAR_SYNC_BEFORE_BOOKING applies wherever a new time of a provider is placed:
a series, a team's booking, a reschedule (signed in or a guest's), a hold, as a booking. The
provider's calendar is synced with a day-long event, then its server serves a meeting added
since (Tuesday 2027-03-02, 10:00-11:00 New York): with the setting, the placement at that
time sees it and is refused; without, it is placed on the last synced busy time. On SQLite
too: the sync's write takes the write lock the request's own transaction would hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from slotwise.state import get_now
from tests.conftest import app_for, closed, make_settings
from tests.external.conftest import CALENDAR_SETTINGS
from tests.external.helpers import connect, new_york_provider, sync
from tests.external.ics_server import CalendarServer
from tests.factories import BOOKING_NOW, Account, guest_booking, signed_in, signed_in_admin

MEETING = "2027-03-02T10:00:00"  # New York: 15:00Z
FREE = "2027-03-03T10:00:00"  # the next day, free in both files


@pytest.fixture(params=[True, False], ids=["sync-first", "last-synced"])
async def app(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url, calendar_sync_before_booking=request.param, **CALENDAR_SETTINGS
    )
    application = app_for(settings)
    application.dependency_overrides[get_now] = lambda: BOOKING_NOW
    yield application
    await closed(application)


def syncs_first(app: FastAPI) -> bool:
    return bool(app.state.slotwise.settings.calendar_sync_before_booking)


async def calendar_changed_since(
    client: httpx.AsyncClient, server: CalendarServer, account: Account
) -> None:
    """The provider's calendar connected and synced, then a meeting added to it."""
    path = f"{account.id}.ics"
    calendar = await connect(client, account, server.serve(path, "all_day.ics"))
    await sync(client, account, calendar["id"])
    server.serve(path, "weekly_dst.ics")


def refused_for_the_meeting(answer: httpx.Response) -> bool:
    """Refused because of the calendar's busy time (a series says so per occurrence)."""
    body: dict[str, Any] = answer.json()
    if answer.status_code != 409:
        return False
    if body["code"] == "series_unavailable":
        return [one["code"] for one in body["details"]["occurrences"]] == ["calendar_busy"]
    return body["code"] == "calendar_busy"


def placed_or_refused(app: FastAPI, answer: httpx.Response, placed: int) -> None:
    if syncs_first(app):
        assert refused_for_the_meeting(answer), answer.text
    else:
        assert answer.status_code == placed, answer.text


async def test_a_series(
    app: FastAPI, client: httpx.AsyncClient, calendar_server: CalendarServer
) -> None:
    account, profile = await new_york_provider(client)
    await calendar_changed_since(client, calendar_server, account)
    booker = await signed_in(client)
    body = {"provider_id": profile["public_handle"], "start_datetime": MEETING, "count": 1}
    answer = await client.post("/appointments/series", headers=booker.headers, json=body)
    placed_or_refused(app, answer, 201)


async def test_a_hold(
    app: FastAPI, client: httpx.AsyncClient, calendar_server: CalendarServer
) -> None:
    account, profile = await new_york_provider(client)
    await calendar_changed_since(client, calendar_server, account)
    answer = await client.post(
        "/holds", json={"provider_id": profile["public_handle"], "start_datetime": MEETING}
    )
    placed_or_refused(app, answer, 201)


async def test_a_reschedule(
    app: FastAPI, client: httpx.AsyncClient, calendar_server: CalendarServer
) -> None:
    account, profile = await new_york_provider(client)
    booker = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["public_handle"], "start_datetime": FREE},
    )
    assert booked.status_code == 201, booked.text
    await calendar_changed_since(client, calendar_server, account)
    answer = await client.post(
        f"/appointments/{booked.json()['id']}/reschedule",
        headers=booker.headers,
        json={"new_start_time": MEETING},
    )
    placed_or_refused(app, answer, 200)


async def test_a_guests_reschedule(
    app: FastAPI, client: httpx.AsyncClient, calendar_server: CalendarServer
) -> None:
    account, profile = await new_york_provider(client)
    booked = await client.post("/appointments/", json=guest_booking(profile["public_handle"], FREE))
    assert booked.status_code == 201, booked.text
    await calendar_changed_since(client, calendar_server, account)
    answer = await client.post(
        f"/bookings/{booked.json()['manage_token']}/reschedule",
        json={"new_start_time": MEETING},
    )
    placed_or_refused(app, answer, 200)


async def test_a_reschedule_of_another_clients_appointment_is_still_not_found(
    app: FastAPI, client: httpx.AsyncClient, calendar_server: CalendarServer
) -> None:
    account, profile = await new_york_provider(client)
    booker, stranger = await signed_in(client), await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["public_handle"], "start_datetime": FREE},
    )
    await calendar_changed_since(client, calendar_server, account)
    answer = await client.post(
        f"/appointments/{booked.json()['id']}/reschedule",
        headers=stranger.headers,
        json={"new_start_time": MEETING},
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "appointment_not_found")


async def test_a_team_booking(
    app: FastAPI, client: httpx.AsyncClient, calendar_server: CalendarServer
) -> None:
    admin = await signed_in_admin(client, app.state.slotwise.settings)
    team = await client.post(
        "/teams", headers=admin.headers, json={"public_handle": "busy-crew", "name": "Crew"}
    )
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]
    account, profile = await new_york_provider(client)
    added = await client.post(
        f"/teams/{team_id}/members",
        headers=admin.headers,
        json={"provider": profile["public_handle"]},
    )
    assert added.status_code == 201, added.text
    service = await client.post(
        f"/teams/{team_id}/services",
        headers=admin.headers,
        json={"name": "Meeting", "mode": "round_robin", "duration_minutes": 60},
    )
    assert service.status_code == 201, service.text
    await calendar_changed_since(client, calendar_server, account)
    answer = await client.post(
        "/teams/busy-crew/appointments",
        json={
            "service_id": service.json()["id"],
            "start_datetime": "2027-03-02T15:00:00Z",
            "guest_details": {"name": "Guest", "email": "guest@example.com"},
        },
    )
    placed_or_refused(app, answer, 201)


async def test_who_may_not_move_it_is_refused_before_any_sync(
    app: FastAPI, client: httpx.AsyncClient, calendar_server: CalendarServer
) -> None:
    """Anonymous (401), a stranger (404), a revoked session (401, and its hold, booking and
    series too): refused first, and the provider's calendar server is not asked (no sync
    spent on their request)."""
    account, profile = await new_york_provider(client)
    booker, stranger, revoked = [await signed_in(client) for _ in range(3)]
    booked = await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["public_handle"], "start_datetime": FREE},
    )
    assert booked.status_code == 201, booked.text
    await calendar_changed_since(client, calendar_server, account)
    ended = await client.post("/auth/logout", headers=revoked.headers)
    assert ended.status_code == 204, ended.text
    asked = len(calendar_server.asked)
    path = f"/appointments/{booked.json()['id']}/reschedule"
    body = {"new_start_time": MEETING}
    for headers, refusal in (
        ({}, 401),
        (stranger.headers, 404),
        (revoked.headers, 401),
    ):
        answer = await client.post(path, headers=headers, json=body)
        assert answer.status_code == refusal, answer.text
    placing = {"provider_id": profile["public_handle"], "start_datetime": MEETING}
    for route, extra in (
        ("/holds", {}),
        ("/appointments/", {}),
        ("/appointments/series", {"count": 1}),
    ):
        answer = await client.post(route, headers=revoked.headers, json={**placing, **extra})
        assert answer.status_code == 401, answer.text
    assert len(calendar_server.asked) == asked
    answer = await client.post(path, headers=booker.headers, json=body)  # the client may
    placed_or_refused(app, answer, 200)
    assert len(calendar_server.asked) == asked + syncs_first(app)
    cancelled = await client.post(
        f"/appointments/{booked.json()['id']}/cancel", headers=booker.headers
    )
    assert cancelled.status_code == 200, cancelled.text
    asked = len(calendar_server.asked)
    answer = await client.post(path, headers=booker.headers, json=body)  # it does not move
    assert (answer.status_code, answer.json()["code"]) == (409, "invalid_transition")
    assert len(calendar_server.asked) == asked


async def test_a_collective_team_booking_moved_syncs_every_member(
    app: FastAPI, client: httpx.AsyncClient, calendar_server: CalendarServer
) -> None:
    """Every member's row moves: the calendar of a member other than the acted-on row's
    is synced too, and its new meeting refuses the move. (A revoked session's team booking
    syncs nothing.)"""
    admin = await signed_in_admin(client, app.state.slotwise.settings)
    team = await client.post(
        "/teams", headers=admin.headers, json={"public_handle": "pair", "name": "Pair"}
    )
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]
    (_first, first_profile), (busy, busy_profile) = [
        await new_york_provider(client) for _ in range(2)
    ]
    for profile in (first_profile, busy_profile):
        added = await client.post(
            f"/teams/{team_id}/members",
            headers=admin.headers,
            json={"provider": profile["public_handle"]},
        )
        assert added.status_code == 201, added.text
    service = await client.post(
        f"/teams/{team_id}/services",
        headers=admin.headers,
        json={"name": "Meeting", "mode": "collective", "duration_minutes": 60},
    )
    assert service.status_code == 201, service.text
    path = f"{busy.id}.ics"
    calendar = await connect(client, busy, calendar_server.serve(path, "all_day.ics"))
    await sync(client, busy, calendar["id"])
    booker, revoked = [await signed_in(client) for _ in range(2)]
    ended = await client.post("/auth/logout", headers=revoked.headers)
    assert ended.status_code == 204, ended.text
    asked = len(calendar_server.asked)
    body = {"service_id": service.json()["id"], "start_datetime": "2027-03-03T15:00:00Z"}
    answer = await client.post("/teams/pair/appointments", headers=revoked.headers, json=body)
    assert answer.status_code == 401, answer.text
    assert len(calendar_server.asked) == asked  # a revoked session's booking: nothing synced
    booked = await client.post(
        "/teams/pair/appointments",
        headers=booker.headers,
        json=body,
    )
    assert booked.status_code == 201, booked.text
    (acted_on,) = (
        one
        for one in booked.json()["appointments"]
        if one["provider_id"] == str(first_profile["id"])
    )
    calendar_server.serve(path, "weekly_dst.ics")  # the busy member's meeting, added since
    answer = await client.post(
        f"/appointments/{acted_on['id']}/reschedule",
        headers=booker.headers,
        json={"new_start_time": "2027-03-02T15:00:00Z"},
    )
    placed_or_refused(app, answer, 200)
