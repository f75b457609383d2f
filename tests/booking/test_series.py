"""Recurring series through the API: every occurrence decided and judged as a single booking,
all or nothing or skip, running limits inside the series, DST, managing a series, tenants,
messages (one per party), webhooks and kept listings per occurrence."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.booking.models import Appointment
from slotwise.notifications.models import OutboxMessage
from tests.factories import (
    Clock,
    bookable_provider,
    count_rows,
    guest_booking,
    signed_in,
    unique_email,
)

FIRST = "2027-03-03"  # a Wednesday; BOOKING_NOW is Monday 2027-03-01 12:00 UTC
WEEKS = (
    [f"2027-03-{d:02d}" for d in (3, 10, 17, 24, 31)]
    + [f"2027-04-{d:02d}" for d in (7, 14, 21, 28)]
    + ["2027-05-05"]
)


def series_body(provider: dict[str, Any], start: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"provider_id": provider["id"], "start_datetime": start, "count": 4}
    body.update(extra)
    return body


def guest_series(provider: dict[str, Any], start: str, **extra: Any) -> dict[str, Any]:
    body = series_body(provider, start, **extra)
    body["guest_details"] = {"name": "Guest", "email": unique_email("guest")}
    return body


async def test_a_series_books_every_occurrence(
    client: httpx.AsyncClient, clock: Clock, app: FastAPI
) -> None:
    _, provider = await bookable_provider(client, requires_confirmation=False)
    kim = await signed_in(client)
    response = await client.post(
        "/appointments/series",
        headers=kim.headers,
        json=series_body(provider, f"{FIRST}T10:00:00", every_weeks=2, count=3),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert [o["start_at"] for o in body["occurrences"]] == [
        "2027-03-03T10:00:00Z",
        "2027-03-17T10:00:00Z",
        "2027-03-31T10:00:00Z",
    ]
    assert body["skipped"] == []
    assert body["count"] == 3
    assert body["every_weeks"] == 2
    assert body["wall_time"] == "10:00:00"
    assert {o["series_id"] for o in body["occurrences"]} == {body["id"]}
    assert body["manage_token"] is None  # signed in
    # Read back by its client.
    read = await client.get(f"/appointments/series/{body['id']}", headers=kim.headers)
    assert read.status_code == 200, read.text
    assert len(read.json()["occurrences"]) == 3
    # One message per party for the series, reminders per occurrence.
    kinds = await _kinds(app)
    assert kinds["series_received"] == 1
    assert kinds["series_confirmed"] == 1
    assert kinds["reminder"] == 3 * len(app.state.slotwise.settings.reminder_offsets_minutes)
    assert "booking_confirmed" not in kinds
    assert "booking_received" not in kinds


async def _kinds(app: FastAPI) -> Counter[str]:
    async with app.state.slotwise.db.transaction(writes=False) as session:
        return Counter(await session.scalars(select(OutboxMessage.kind)))


async def test_all_or_nothing_lists_every_occurrence_that_fails(
    client: httpx.AsyncClient, clock: Clock, app: FastAPI
) -> None:
    _, provider = await bookable_provider(client, max_advance_days=20)
    taken = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{WEEKS[1]}T10:00:00Z")
    )
    assert taken.status_code == 201
    response = await client.post(
        "/appointments/series", json=guest_series(provider, f"{FIRST}T10:00:00", count=4)
    )
    assert response.status_code == 409, response.text
    error = response.json()
    assert error["code"] == "series_unavailable"
    assert error["details"]["occurrences"] == [
        {
            "index": 1,
            "start_at": "2027-03-10T10:00:00+00:00",
            "code": "slot_unavailable",
            "details": None,
        },
        {
            "index": 3,
            "start_at": "2027-03-24T10:00:00+00:00",
            "code": "too_far",
            "details": {"max_advance_days": 20},
        },
    ]
    assert await count_rows(app, Appointment) == 1  # nothing of the series written


async def test_skip_books_the_free_ones_and_lists_the_others(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    await client.post("/appointments/", json=guest_booking(provider["id"], f"{WEEKS[2]}T10:00:00Z"))
    response = await client.post(
        "/appointments/series",
        json=guest_series(provider, f"{FIRST}T10:00:00", count=4, on_conflict="skip"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert [o["start_at"][:10] for o in body["occurrences"]] == [WEEKS[0], WEEKS[1], WEEKS[3]]
    assert body["skipped"] == [
        {
            "index": 2,
            "start_at": "2027-03-17T10:00:00Z",
            "code": "slot_unavailable",
            "details": None,
        }
    ]
    assert body["manage_token"]  # a guest's, shown once
    guest = await client.get(f"/bookings/series/{body['manage_token']}")
    assert guest.status_code == 200
    assert guest.json()["id"] == body["id"]


async def test_running_limits_inside_a_series(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client, max_active_bookings_per_client=5)
    kim = await signed_in(client)
    failed = await client.post(
        "/appointments/series",
        headers=kim.headers,
        json=series_body(provider, f"{FIRST}T10:00:00", count=8),
    )
    assert failed.status_code == 409, failed.text
    assert [o["index"] for o in failed.json()["details"]["occurrences"]] == [5, 6, 7]
    assert {o["code"] for o in failed.json()["details"]["occurrences"]} == {"limit_reached"}
    skipped = await client.post(
        "/appointments/series",
        headers=kim.headers,
        json=series_body(provider, f"{FIRST}T10:00:00", count=8, on_conflict="skip"),
    )
    assert skipped.status_code == 201, skipped.text
    assert len(skipped.json()["occurrences"]) == 5
    assert [(s["index"], s["code"]) for s in skipped.json()["skipped"]] == [
        (5, "limit_reached"),
        (6, "limit_reached"),
        (7, "limit_reached"),
    ]


async def test_a_skip_does_not_count_toward_a_later_limit(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, max_active_bookings_per_client=3)
    kim = await signed_in(client)
    await client.post("/appointments/", json=guest_booking(provider["id"], f"{WEEKS[0]}T10:00:00Z"))
    response = await client.post(
        "/appointments/series",
        headers=kim.headers,
        json=series_body(provider, f"{FIRST}T10:00:00", count=5, on_conflict="skip"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    # Week 0 is taken (slot_unavailable, nothing taken by it): weeks 1-3 fill the limit.
    assert [o["start_at"][:10] for o in body["occurrences"]] == WEEKS[1:4]
    assert [(s["index"], s["code"]) for s in body["skipped"]] == [
        (0, "slot_unavailable"),
        (4, "limit_reached"),
    ]


async def test_too_long_and_bad_bodies(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client)
    too_long = await client.post(
        "/appointments/series", json=guest_series(provider, f"{FIRST}T10:00:00", count=53)
    )
    assert too_long.status_code == 422
    assert too_long.json()["code"] == "series_too_long"
    assert too_long.json()["details"] == {"max_occurrences": 52}
    by_date = guest_series(provider, f"{FIRST}T10:00:00", count=None, until="2028-06-01")
    assert (await client.post("/appointments/series", json=by_date)).json()["code"] == (
        "series_too_long"
    )
    both = guest_series(provider, f"{FIRST}T10:00:00", until="2027-04-01")
    assert (await client.post("/appointments/series", json=both)).status_code == 422
    weeks = guest_series(provider, f"{FIRST}T10:00:00", every_weeks=5)
    assert (await client.post("/appointments/series", json=weeks)).status_code == 422
    kim = await signed_in(client)  # (a guest holds at most 3 upcoming bookings: 4 are too many)
    until = series_body(provider, f"{FIRST}T10:00:00", count=None, until="2027-03-24")
    booked = await client.post("/appointments/series", headers=kim.headers, json=until)
    assert booked.status_code == 201, booked.text
    assert len(booked.json()["occurrences"]) == 4  # the 3rd, 10th, 17th and 24th


async def test_whole_series_refusals_answer_as_a_single_booking(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, provider = await bookable_provider(client)
    mine = await client.post(
        "/appointments/series",
        headers=owner.headers,
        json=series_body(provider, f"{FIRST}T10:00:00"),
    )
    assert mine.status_code == 422
    assert mine.json()["code"] == "cannot_book_yourself"
    unknown = await client.post(
        "/appointments/series", json=guest_series({"id": "nobody-here"}, f"{FIRST}T10:00:00")
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "provider_not_found"


async def test_dst_keeps_the_wall_time(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client, timezone="America/Santiago")
    response = await client.post(
        "/appointments/series",
        json=guest_series(provider, "2027-03-30T09:00:00", count=3),
    )
    assert response.status_code == 201, response.text
    # Santiago fell back on 2027-04-04 (-03 -> -04): 09:00 stays 09:00.
    assert [o["start_at"] for o in response.json()["occurrences"]] == [
        "2027-03-30T09:00:00-03:00",
        "2027-04-06T09:00:00-04:00",
        "2027-04-13T09:00:00-04:00",
    ]


@pytest.mark.parametrize(
    ("zone", "first", "change", "expected"),
    [
        # Midnight transitions: 00:00 does not exist on the change day; read with the offset
        # before the gap it is 01:00 in the new offset, the day's first slot.
        ("America/Santiago", "2027-08-29T00:00:00", "2027-09-05T00:00:00", "01:00:00-03:00"),
        ("Asia/Beirut", "2027-03-21T00:00:00", "2027-03-28T00:00:00", "01:00:00+03:00"),
        # Santiago falls back at midnight: 23:00 on 2027-04-03 happens twice; the first.
        ("America/Santiago", "2027-03-27T23:00:00", "2027-04-03T23:00:00", "23:00:00-03:00"),
        # An hour's gap at 02:00: 02:30 is read as 03:30 CEST, on the half-hour grid.
        ("Europe/Berlin", "2027-03-21T02:30:00", "2027-03-28T02:30:00", "03:30:00+02:00"),
    ],
)
async def test_an_occurrence_on_a_change_day_lands_where_a_single_booking_does(
    client: httpx.AsyncClient, clock: Clock, zone: str, first: str, change: str, expected: str
) -> None:
    """On both databases, through the API: the occurrence on a transition day follows the
    single-booking rule (RFC 5545, fold 0), the others keep their wall time."""
    open_all_day: dict[str, Any] = {
        "timezone": zone,
        "hours": ("00:00:00", "23:59:00"),
        "session_duration_minutes": 30,
        "slot_interval_minutes": 30,
    }
    _, provider = await bookable_provider(client, **open_all_day)
    _, twin = await bookable_provider(client, **open_all_day)
    kim, lee = await signed_in(client), await signed_in(client)
    series = await client.post(
        "/appointments/series",
        headers=kim.headers,
        json=series_body(provider, first, count=3),
    )
    assert series.status_code == 201, series.text
    single = await client.post(
        "/appointments/",
        headers=lee.headers,
        json={"provider_id": twin["id"], "start_datetime": change},
    )
    assert single.status_code == 201, single.text
    starts = [o["start_at"] for o in series.json()["occurrences"]]
    assert starts[1] == single.json()["start_at"] == f"{change[:10]}T{expected}"
    wall = first[11:]
    assert starts[0][11:19] == starts[2][11:19] == wall  # the other weeks keep the wall time


async def test_another_tenant_sees_404(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client)
    kim = await signed_in(client)
    created = await client.post(
        "/appointments/series", headers=kim.headers, json=series_body(provider, f"{FIRST}T10:00:00")
    )
    series_id = created.json()["id"]
    other = await signed_in(client)
    for method, path, body in (
        ("GET", f"/appointments/series/{series_id}", None),
        ("POST", f"/appointments/series/{series_id}/cancel", {}),
        ("PATCH", f"/appointments/series/{series_id}/status", {"status": "confirmed"}),
    ):
        answer = await client.request(method, path, headers=other.headers, json=body)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["code"] == "series_not_found"
    assert (await client.get("/bookings/series/" + "x" * 43)).json()["code"] == "series_not_found"


async def test_cancel_this_and_following_and_one_occurrence(
    client: httpx.AsyncClient, clock: Clock, app: FastAPI
) -> None:
    _, provider = await bookable_provider(client, requires_confirmation=False)
    kim = await signed_in(client)
    created = (
        await client.post(
            "/appointments/series",
            headers=kim.headers,
            json=series_body(provider, f"{FIRST}T10:00:00", count=5),
        )
    ).json()
    ids = [o["id"] for o in created["occurrences"]]
    one = await client.post(f"/appointments/{ids[1]}/cancel", headers=kim.headers, json={})
    assert one.status_code == 200
    assert one.json()["status"] == "cancelled"
    following = await client.post(
        f"/appointments/series/{created['id']}/cancel",
        headers=kim.headers,
        json={"from_appointment_id": ids[3], "reason": "Term ends"},
    )
    assert following.status_code == 200, following.text
    assert [o["status"] for o in following.json()["occurrences"]] == [
        "confirmed",
        "cancelled",
        "confirmed",
        "cancelled",
        "cancelled",
    ]
    assert following.json()["occurrences"][4]["history"][-1]["reason"] == "Term ends"
    kinds = await _kinds(app)
    assert kinds["series_cancelled"] == 2  # client and provider, once for both occurrences
    again = await client.post(
        f"/appointments/series/{created['id']}/cancel",
        headers=kim.headers,
        json={"from_appointment_id": ids[3]},
    )
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_transition"
    # The time is free again: a single booking takes the 4th week.
    retaken = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{WEEKS[3]}T10:00:00Z")
    )
    assert retaken.status_code == 201, retaken.text


async def test_provider_confirms_or_declines_a_pending_series_as_one(
    client: httpx.AsyncClient, clock: Clock, app: FastAPI
) -> None:
    owner, provider = await bookable_provider(client, requires_confirmation=True)
    kim = await signed_in(client)
    created = (
        await client.post(
            "/appointments/series",
            headers=kim.headers,
            json=series_body(provider, f"{FIRST}T10:00:00", count=3),
        )
    ).json()
    assert {o["status"] for o in created["occurrences"]} == {"pending"}
    by_client = await client.patch(
        f"/appointments/series/{created['id']}/status",
        headers=kim.headers,
        json={"status": "confirmed"},
    )
    assert by_client.status_code == 403
    confirmed = await client.patch(
        f"/appointments/series/{created['id']}/status",
        headers=owner.headers,
        json={"status": "confirmed"},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert {o["status"] for o in confirmed.json()["occurrences"]} == {"confirmed"}
    kinds = await _kinds(app)
    assert kinds["series_pending"] == 1
    assert kinds["series_confirmed"] == 1
    assert kinds["reminder"] == 3 * len(app.state.slotwise.settings.reminder_offsets_minutes)
    again = await client.patch(
        f"/appointments/series/{created['id']}/status",
        headers=owner.headers,
        json={"status": "declined"},
    )
    assert again.status_code == 409


async def test_each_occurrence_is_announced_and_listed_as_taken(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)

    async def starts() -> list[str]:
        listing = await client.get(f"/providers/{provider['id']}/slots", params={"date": WEEKS[2]})
        assert listing.status_code == 200, listing.text
        return [s["start_at"][11:16] for s in listing.json()["slots"]]

    assert "10:00" in await starts()  # listed, and kept by the worker
    booked = await client.post(
        "/appointments/series", json=guest_series(provider, f"{FIRST}T10:00:00", count=3)
    )
    assert booked.status_code == 201
    assert "10:00" not in await starts()  # the kept listing learned of the occurrence


async def test_an_idempotency_key_books_a_series_once(
    client: httpx.AsyncClient, clock: Clock, app: FastAPI
) -> None:
    _, provider = await bookable_provider(client, requires_confirmation=False)
    kim = await signed_in(client)
    body = series_body(provider, f"{FIRST}T10:00:00", count=3)
    headers = {**kim.headers, "Idempotency-Key": "term-plan-1"}
    first = await client.post("/appointments/series", headers=headers, json=body)
    again = await client.post("/appointments/series", headers=headers, json=body)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    async with app.state.slotwise.db.session(writes=False) as session:
        stored = (await session.scalars(select(Appointment))).all()
    assert len(stored) == 3  # one series, not two

    other = series_body(provider, f"{FIRST}T11:00:00", count=3)
    reused = await client.post("/appointments/series", headers=headers, json=other)
    assert reused.status_code == 422, reused.text
    assert reused.json()["code"] == "idempotency_key_reused"


async def test_a_guests_replayed_series_carries_a_fresh_manage_token(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, requires_confirmation=False)
    body = guest_series(provider, f"{FIRST}T10:00:00", count=2)
    headers = {"Idempotency-Key": "guest-plan-1"}
    first = await client.post("/appointments/series", headers=headers, json=body)
    again = await client.post("/appointments/series", headers=headers, json=body)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json()["id"] == first.json()["id"]
    old, new = first.json()["manage_token"], again.json()["manage_token"]
    assert old
    assert new
    assert new != old
    assert (await client.get(f"/bookings/series/{old}")).status_code == 404
    managed = await client.get(f"/bookings/series/{new}")
    assert managed.status_code == 200, managed.text
    assert managed.json()["id"] == first.json()["id"]


def test_openapi_describes_the_series_routes_and_their_errors(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    booking = paths["/api/v1/appointments/series"]["post"]
    assert {"201", "401", "404", "409", "422", "429"} <= set(booking["responses"])
    for said in ("series_unavailable", "series_too_long", "pending_verification", "session_full"):
        assert said in booking["description"]
    assert "series_needs_sign_in" not in booking["description"]
    assert booking["x-api-key-scope"] == "book"
    one = "/api/v1/appointments/series/{series_id}"
    assert {"200", "401", "404"} <= set(paths[one]["get"]["responses"])
    assert {"200", "401", "404", "409"} <= set(paths[one + "/cancel"]["post"]["responses"])
    assert paths[one + "/cancel"]["post"]["x-api-key-scope"] == "book"
    status = paths[one + "/status"]["patch"]
    assert {"200", "401", "403", "404", "409"} <= set(status["responses"])
    assert status["x-api-key-scope"] == "manage"
    guest = "/api/v1/bookings/series/{token}"
    assert {"200", "404"} <= set(paths[guest]["get"]["responses"])
    assert {"200", "404", "409"} <= set(paths[guest + "/cancel"]["post"]["responses"])
    verify = paths["/api/v1/bookings/series/verify/{token}"]
    assert "text/html" in verify["get"]["responses"]["200"]["content"]
    assert {"200", "404", "409"} <= set(verify["post"]["responses"])
    for said in ("verification_expired", "series_not_found", "invalid_transition"):
        assert said in verify["post"]["description"]
