"""Hours that run to midnight: "24:00" (or 00:00) as an end time is the end of the day."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from slotwise.state import get_now
from tests.factories import BOOKING_NOW, Clock, provider_with_profile, signed_in

WEDNESDAY = "2027-03-03"


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    yield controlled
    app.dependency_overrides.pop(get_now, None)


async def slots(client: httpx.AsyncClient, handle: object, on: str) -> list[tuple[str, str]]:
    response = await client.get(f"/providers/{handle}/slots", params={"date": on})
    assert response.status_code == 200, response.text
    return [(s["start_at"], s["end_at"]) for s in response.json()["slots"]]


async def test_evening_hours_run_to_midnight(client: httpx.AsyncClient, clock: Clock) -> None:
    account, profile = await provider_with_profile(
        client, timezone="America/New_York", max_advance_days=365
    )
    created = await client.post(
        "/providers/me/availability",
        headers=account.headers,
        json={"day_of_week": 2, "start_time": "22:00", "end_time": "24:00"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["end_time"] == "00:00:00"
    assert await slots(client, profile["public_handle"], WEDNESDAY) == [
        ("2027-03-03T22:00:00-05:00", "2027-03-03T23:00:00-05:00"),
        ("2027-03-03T23:00:00-05:00", "2027-03-04T00:00:00-05:00"),
    ]
    booker = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["id"], "start_datetime": "2027-03-03T23:00:00-05:00"},
    )
    assert booked.status_code == 201, booked.text


async def test_midnight_to_midnight_is_the_whole_day(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    account, profile = await provider_with_profile(
        client, timezone="UTC", max_advance_days=365, session_duration_minutes=240
    )
    created = await client.post(
        "/providers/me/availability",
        headers=account.headers,
        json={"day_of_week": 2, "start_time": "00:00:00", "end_time": "00:00:00"},
    )
    assert created.status_code == 201, created.text
    starts = [start[11:16] for start, _end in await slots(client, profile["id"], WEDNESDAY)]
    assert starts == ["00:00", "04:00", "08:00", "12:00", "16:00", "20:00"]


async def test_a_range_to_midnight_overlaps_what_it_covers(client: httpx.AsyncClient) -> None:
    account, _profile = await provider_with_profile(client)
    first = await client.post(
        "/providers/me/availability",
        headers=account.headers,
        json={"day_of_week": 4, "start_time": "20:00", "end_time": "24:00"},
    )
    assert first.status_code == 201
    clash = await client.post(
        "/providers/me/availability",
        headers=account.headers,
        json={"day_of_week": 4, "start_time": "23:00", "end_time": "23:30"},
    )
    assert clash.status_code == 409
    assert clash.json()["code"] == "availability_overlap"
    before = await client.post(
        "/providers/me/availability",
        headers=account.headers,
        json={"day_of_week": 4, "start_time": "09:00", "end_time": "20:00"},
    )
    assert before.status_code == 201  # touching is not overlapping


@pytest.mark.parametrize(
    "body",
    [
        {"start_time": "10:00", "end_time": "09:00"},
        {"start_time": "09:00", "end_time": "09:00"},
        {"start_time": "09:00", "end_time": "24:30"},
        {"start_time": "24:00", "end_time": "24:00"},
    ],
)
async def test_other_ends_still_come_after_the_start(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    account, _profile = await provider_with_profile(client)
    refused = await client.post(
        "/providers/me/availability", headers=account.headers, json={"day_of_week": 0, **body}
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "validation_error"


async def test_updates_and_date_overrides_take_midnight_too(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    account, profile = await provider_with_profile(client, timezone="UTC", max_advance_days=365)
    created = await client.post(
        "/providers/me/availability",
        headers=account.headers,
        json={"day_of_week": 2, "start_time": "09:00", "end_time": "17:00"},
    )
    moved = await client.put(
        f"/providers/me/availability/{created.json()['id']}",
        headers=account.headers,
        json={"start_time": "21:00", "end_time": "24:00"},
    )
    assert moved.status_code == 200, moved.text
    starts = [start[11:16] for start, _end in await slots(client, profile["id"], WEDNESDAY)]
    assert starts == ["21:00", "22:00", "23:00"]
    override = await client.post(
        "/providers/me/date-overrides",
        headers=account.headers,
        json={
            "date": "2027-03-04",
            "kind": "replace",
            "ranges": [{"start_time": "23:00", "end_time": "24:00"}],
        },
    )
    assert override.status_code == 201, override.text
    assert [s[11:16] for s, _e in await slots(client, profile["id"], "2027-03-04")] == ["23:00"]
    backwards = await client.put(
        f"/providers/me/availability/{created.json()['id']}",
        headers=account.headers,
        json={"start_time": "23:00", "end_time": "22:00"},
    )
    assert backwards.status_code == 422
