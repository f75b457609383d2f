"""Dates at the calendar's edges: outside years 2-9998 a 422 naming the field; inside, the
slot listing answers (empty beyond the provider's horizon) and never overflows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from slotwise.state import get_now
from tests.factories import Account, Clock, add_pattern, provider_with_profile

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OUT_OF_RANGE = [
    ({"date": "9999-12-31"}, "date"),
    ({"date": "0001-01-01"}, "date"),
    ({"from": "9999-12-01", "to": "9999-12-31"}, "from"),
    ({"from": "9998-12-01", "to": "9999-01-01"}, "to"),
]


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    controlled = Clock(NOW)
    app.dependency_overrides[get_now] = controlled
    yield controlled
    app.dependency_overrides.pop(get_now, None)


def assert_refused(response: httpx.Response, *loc: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert list(loc) in [item["loc"] for item in body["details"]], body


async def open_provider(client: httpx.AsyncClient, zone: str) -> tuple[Account, dict[str, object]]:
    account, profile = await provider_with_profile(client, timezone=zone)
    for day in range(7):
        await add_pattern(client, account, day, "00:00:00", "00:00:00")  # open all day
    return account, profile


@pytest.mark.parametrize(("params", "field"), OUT_OF_RANGE)
async def test_slot_listing_outside_the_range_is_422(
    client: httpx.AsyncClient, clock: Clock, params: dict[str, str], field: str
) -> None:
    account, profile = await open_provider(client, "America/New_York")
    pid = profile["id"]
    for path, extra in (
        (f"/providers/{profile['public_handle']}/slots", {}),
        (f"/tutors/{pid}/slots", {}),
        (f"/doctors/{pid}/slots", {}),
        ("/tutors/availability", {"tutor_id": pid}),
        ("/doctors/availability", {"doctor_id": pid}),
        ("/providers/availability", {"provider_id": pid}),
        ("/availability/slots", {"staff_id": account.id}),
        ("/appointments/availability", {"provider_id": pid}),
    ):
        response = await client.get(path, params={**params, **extra})
        assert_refused(response, "query", field)
    own = await client.get("/providers/me/slots", params=params, headers=account.headers)
    assert_refused(own, "query", field)


@pytest.mark.parametrize("zone", ["Etc/GMT+12", "Pacific/Kiritimati", "America/New_York"])
async def test_the_range_ends_answer_empty_beyond_the_horizon(
    client: httpx.AsyncClient, clock: Clock, zone: str
) -> None:
    _, profile = await open_provider(client, zone)
    url = f"/providers/{profile['public_handle']}/slots"
    for params in (
        {"date": "9998-12-31"},
        {"date": "0002-01-01"},
        {"from": "9998-11-01", "to": "9998-12-31"},
        {"from": "0002-01-01", "to": "0002-03-03"},
    ):
        response = await client.get(url, params=params)
        assert response.status_code == 200, (params, response.text)
        assert response.json()["slots"] == []


@pytest.mark.parametrize("zone", ["Etc/GMT+12", "Pacific/Kiritimati", "Etc/GMT-14"])
async def test_slots_on_the_last_and_first_days_of_the_range(
    client: httpx.AsyncClient, clock: Clock, zone: str
) -> None:
    """With the clock at the range's end (or its start), its last (first) day has slots."""
    _, profile = await open_provider(client, zone)
    url = f"/providers/{profile['public_handle']}/slots"
    clock.now = datetime(9998, 12, 29, tzinfo=UTC)
    last = await client.get(url, params={"date": "9998-12-31", "tz": "Etc/GMT+12"})
    assert last.status_code == 200, last.text
    slots = last.json()["slots"]
    assert slots, "the range's last day is bookable"
    assert slots[-1]["start_at"].startswith("9998-12-31T23:00:00")
    clock.now = datetime(1, 12, 31, tzinfo=UTC)
    first = await client.get(url, params={"date": "0002-01-01", "tz": "Etc/GMT-14"})
    assert first.status_code == 200, first.text
    assert first.json()["slots"][0]["start_at"].startswith("0002-01-01T00:00:00")


async def test_dates_of_hours_and_days_off_outside_the_range_are_422(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    account, profile = await provider_with_profile(client, timezone="America/New_York")
    headers = account.headers
    hours = {"day_of_week": 1, "start_time": "09:00", "end_time": "10:00"}
    once = {"start_time": "09:00", "end_time": "10:00", "is_recurring": False}
    for path, body, field in (
        (
            "/providers/me/availability",
            {**hours, "valid_from_date": "0001-01-01"},
            "valid_from_date",
        ),
        (
            "/providers/me/availability",
            {**hours, "valid_until_date": "9999-12-31"},
            "valid_until_date",
        ),
        ("/providers/me/date-overrides", {"date": "9999-12-31", "kind": "unavailable"}, "date"),
        ("/providers/me/date-overrides", {"date": "0001-01-01", "kind": "unavailable"}, "date"),
        (
            "/providers/me/time-off",
            {"start_date": "9998-12-30", "end_date": "9999-12-31"},
            "end_date",
        ),
        (
            "/providers/me/time-off",
            {"start_date": "0001-01-01", "end_date": "0002-01-01"},
            "start_date",
        ),
        ("/availability/", {**once, "specific_date": "9999-12-31"}, "specific_date"),
    ):
        assert_refused(await client.post(path, json=body, headers=headers), "body", field)
    pattern = await add_pattern(client, account, 1, "09:00:00", "10:00:00")
    changed = await client.patch(
        f"/providers/me/availability/{pattern['id']}",
        json={"valid_until_date": "9999-12-31"},
        headers=headers,
    )
    assert_refused(changed, "body", "valid_until_date")
    handle = profile["public_handle"]
    for path in (f"/providers/{handle}/date-overrides", f"/providers/{handle}/time-off"):
        assert_refused(await client.get(path, params={"from": "0001-01-01"}), "query", "from")
        assert_refused(await client.get(path, params={"to": "9999-12-31"}), "query", "to")
    # The range's own ends are taken.
    kept = await client.post(
        "/providers/me/time-off",
        json={"start_date": "0002-01-01", "end_date": "9998-12-31"},
        headers=headers,
    )
    assert kept.status_code == 201, kept.text
