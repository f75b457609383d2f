"""Datetimes at the calendar's edges: outside years 2-9998 a 422 naming the field; inside,
booking, rescheduling and listing work up to the range's last hour."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tests.factories import BOOKING_NOW, Clock, bookable_provider, guest_booking, signed_in

OUTSIDE = ["9999-12-31T23:00:00", "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"]


def assert_refused(response: httpx.Response, *loc: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert list(loc) in [item["loc"] for item in body["details"]], body


@pytest.mark.parametrize("start", OUTSIDE)
async def test_booking_outside_the_range_is_422(
    client: httpx.AsyncClient, clock: Clock, start: str
) -> None:
    _, provider = await bookable_provider(client, timezone="America/New_York")
    customer = await signed_in(client)
    guest = await client.post("/appointments/", json=guest_booking(provider["id"], start))
    assert_refused(guest, "body", "start_datetime")
    own = {"provider_id": provider["id"], "start_datetime": start}
    signed = await client.post("/appointments/", json=own, headers=customer.headers)
    assert_refused(signed, "body", "start_datetime")
    keyed = {**customer.headers, "Idempotency-Key": "edge-1"}  # FastAPI's own path
    replayable = await client.post("/appointments/", json=own, headers=keyed)
    assert_refused(replayable, "body", "start_datetime")
    ending = {**own, "start_datetime": "2027-03-02T10:00:00Z", "end_datetime": start}
    ended = await client.post("/appointments/", json=ending, headers=customer.headers)
    assert_refused(ended, "body", "end_datetime")
    inside = guest_booking(provider["id"], "9998-12-31T23:59:00-23:59")  # 9999 in UTC
    beyond = await client.post("/appointments/", json=inside)
    assert beyond.status_code == 422
    assert beyond.json()["code"] == "too_far"


@pytest.mark.parametrize("start", OUTSIDE)
async def test_reschedule_outside_the_range_is_422(
    client: httpx.AsyncClient, clock: Clock, start: str
) -> None:
    _, provider = await bookable_provider(client, timezone="America/New_York")
    customer = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        json={"provider_id": provider["id"], "start_datetime": "2027-03-02T10:00:00"},
        headers=customer.headers,
    )
    assert booked.status_code == 201, booked.text
    moved = await client.post(
        f"/appointments/{booked.json()['id']}/reschedule",
        json={"new_start_time": start},
        headers=customer.headers,
    )
    assert_refused(moved, "body", "new_start_time")
    guest = await client.post(
        "/appointments/", json=guest_booking(provider["id"], "2027-03-02T12:00:00")
    )
    token = guest.json()["manage_token"]
    guest_moved = await client.post(f"/bookings/{token}/reschedule", json={"new_start_time": start})
    assert_refused(guest_moved, "body", "new_start_time")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "9999-12-31T23:59:59-05:00"}, "from"),
        ({"to": "9999-12-31T23:59:59-05:00"}, "to"),
        ({"from": "0001-01-01T00:00:00+05:00"}, "from"),
        ({"to": "0001-01-01T03:00:00+05:00"}, "to"),
    ],
)
async def test_appointment_list_outside_the_range_is_422(
    client: httpx.AsyncClient, clock: Clock, params: dict[str, str], field: str
) -> None:
    customer = await signed_in(client)
    response = await client.get("/appointments/", params=params, headers=customer.headers)
    assert_refused(response, "query", field)


async def test_the_range_is_usable_to_its_last_hour(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    """A provider twelve hours behind UTC: the range's last wall hour is in year 9999 UTC."""
    account, provider = await bookable_provider(
        client, timezone="Etc/GMT+12", hours=("00:00:00", "00:00:00"), requires_confirmation=False
    )
    clock.now = datetime(9998, 12, 30, tzinfo=UTC)
    booked = await client.post(
        "/appointments/", json=guest_booking(provider["id"], "9998-12-31T22:00:00")
    )
    assert booked.status_code == 201, booked.text
    assert booked.json()["start_at"] == "9998-12-31T22:00:00-12:00"
    token = booked.json()["manage_token"]
    moved = await client.post(
        f"/bookings/{token}/reschedule", json={"new_start_time": "9998-12-31T23:00:00-12:00"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["end_at"] == "9999-01-01T00:00:00-12:00"
    clock.now = BOOKING_NOW  # the provider's token was issued at the real clock's time
    listed = await client.get(
        "/appointments/",
        params={"from": "9998-12-31T23:00:00-12:00", "to": "9998-12-31T23:59:59-23:59"},
        headers=account.headers,
    )
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [booked.json()["id"]]
