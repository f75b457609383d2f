"""Series against single bookings, as races: a series and the singles on its occurrences,
fired together, never interleave (one transaction under the booking locks)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.factories import Clock, bookable_provider, guest_booking, signed_in

WEEKS = 10
FIRST = "2027-03-03"  # a Wednesday, two days after the test clock


def _week(i: int) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(FIRST) + timedelta(weeks=i)).isoformat()


async def _race(
    client: httpx.AsyncClient, on_conflict: str
) -> tuple[httpx.Response, list[httpx.Response], dict[str, Any]]:
    _, provider = await bookable_provider(client, requires_confirmation=False)
    kim = await signed_in(client)
    series = client.post(
        "/appointments/series",
        headers=kim.headers,
        json={
            "provider_id": provider["id"],
            "start_datetime": f"{FIRST}T10:00:00Z",
            "count": WEEKS,
            "on_conflict": on_conflict,
        },
    )
    singles = [
        client.post("/appointments/", json=guest_booking(provider["id"], f"{_week(i)}T10:00:00Z"))
        for i in range(WEEKS)
    ]
    # The series first, then the singles, interleaved by the event loop.
    first, *rest = await asyncio.gather(series, *singles)
    return first, rest, provider


async def test_series_against_singles_all_or_nothing(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    outcomes = set()
    for _ in range(3):
        series, singles, _provider = await _race(client, "fail")
        won = {i for i, r in enumerate(singles) if r.status_code == 201}
        assert all(r.status_code in (201, 409) for r in singles)
        if series.status_code == 201:
            outcomes.add("series")
            assert len(series.json()["occurrences"]) == WEEKS
            assert won == set()
            assert {r.json()["code"] for r in singles} == {"slot_unavailable"}
        else:
            outcomes.add("singles")
            assert series.status_code == 409, series.text
            error = series.json()
            assert error["code"] == "series_unavailable"
            listed = {o["index"] for o in error["details"]["occurrences"]}
            assert {o["code"] for o in error["details"]["occurrences"]} == {"slot_unavailable"}
            # What it lists is what singles took before it; the series took nothing, so
            # every single wins, those after it too.
            assert listed
            assert listed <= won
            assert won == set(range(WEEKS))
    assert outcomes  # (either way is right; both are seen over many runs)


async def test_series_against_singles_skip_partitions_the_slots(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    for _ in range(3):
        series, singles, _provider = await _race(client, "skip")
        won = {i for i, r in enumerate(singles) if r.status_code == 201}
        lost = {i for i, r in enumerate(singles) if r.status_code == 409}
        assert won | lost == set(range(WEEKS))
        if series.status_code == 409:  # every single came first
            assert won == set(range(WEEKS))
            continue
        assert series.status_code == 201, series.text
        body = series.json()
        taken = {
            [_week(i) for i in range(WEEKS)].index(o["start_at"][:10]) for o in body["occurrences"]
        }
        skipped = {s["index"] for s in body["skipped"]}
        assert {s["code"] for s in body["skipped"]} <= {"slot_unavailable"}
        # Series and singles partition the ten slots.
        assert taken | won == set(range(WEEKS))
        assert taken & won == set()
        assert skipped == won
        assert lost == taken


async def test_two_series_sharing_an_occurrence_one_wins_entirely(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    kim, lea = await signed_in(client), await signed_in(client)
    # Weekly from the 3rd and every two weeks from the 17th: they share the 17th and 31st.
    weekly = {"provider_id": provider["id"], "start_datetime": f"{FIRST}T10:00:00Z", "count": 5}
    fortnightly = {
        "provider_id": provider["id"],
        "start_datetime": f"{_week(2)}T10:00:00Z",
        "count": 3,
        "every_weeks": 2,
    }
    responses = await asyncio.gather(
        client.post("/appointments/series", headers=kim.headers, json=weekly),
        client.post("/appointments/series", headers=lea.headers, json=fortnightly),
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    loser = next(r for r in responses if r.status_code == 409).json()
    assert loser["code"] == "series_unavailable"
    assert {o["code"] for o in loser["details"]["occurrences"]} == {"slot_unavailable"}
