"""Suggested slots (`GET /providers/{ref}/slots/suggestions`, `order=best` on the search):
the listing's own slots, ordered by the ranking rules or a loaded model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from slotwise.main import create_app
from slotwise.scheduling.ranking import FEATURE_NAMES
from slotwise.state import get_now
from tests.conftest import make_settings
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    guest_booking,
    signed_in,
)

DAY = "2027-03-02"  # a Tuesday, the day after BOOKING_NOW


@pytest.fixture
def clock(app: FastAPI) -> Clock:
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    return controlled


async def _suggest(
    client: httpx.AsyncClient, handle: object, who: Account | None = None, **params: object
) -> dict[str, Any]:
    response = await client.get(
        f"/providers/{handle}/slots/suggestions",
        params={k: str(v) for k, v in params.items()},
        headers=who.headers if who else {},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_suggestions_are_the_listings_slots_best_first(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _account, profile = await bookable_provider(client)
    booked = await client.post(
        "/appointments/", json=guest_booking(profile["id"], f"{DAY}T12:00:00Z")
    )
    assert booked.status_code == 201
    body = await _suggest(client, profile["public_handle"], date=DAY, limit=20)
    listing = await client.get(f"/providers/{profile['public_handle']}/slots", params={"date": DAY})
    slots = listing.json()["slots"]
    suggested = body["suggestions"]
    assert body["ranked_by"] == "rules"
    assert sorted(s["start_at"] for s in suggested) == sorted(s["start_at"] for s in slots)
    for one in suggested:  # the listing's own slot, with a score and reasons
        assert {k: v for k, v in one.items() if k not in {"score", "reasons"}} in slots
    assert [s["score"] for s in suggested] == sorted((s["score"] for s in suggested), reverse=True)
    top = [s["start_at"][11:16] for s in suggested[:2]]
    assert top == ["11:00", "13:00"]  # next to the 12:00 booking
    assert any(
        "keeps" in reason and "day without gaps" in reason for reason in suggested[0]["reasons"]
    )
    few = await _suggest(client, profile["public_handle"], date=DAY)
    assert len(few["suggestions"]) == 5  # by default


async def test_a_clients_usual_time_is_suggested_first(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider, profile = await bookable_provider(client, requires_confirmation=False)
    regular = await signed_in(client)
    clock.now = BOOKING_NOW - timedelta(weeks=5)
    past = []
    for week in range(1, 4):  # three Tuesdays at 15:00, weeks ago
        start = datetime(2027, 3, 2, 15, tzinfo=UTC) - timedelta(weeks=week)
        made = await client.post(
            "/appointments/",
            headers=regular.headers,
            json={"provider_id": profile["id"], "start_datetime": start.isoformat()},
        )
        assert made.status_code == 201, made.text
        past.append(made.json()["id"])
    clock.now = BOOKING_NOW
    for appointment_id in past:
        done = await client.post(
            f"/appointments/{appointment_id}/mark-completed", headers=provider.headers
        )
        assert done.status_code == 200, done.text
    body = await _suggest(
        client, profile["public_handle"], regular, **{"from": DAY, "to": "2027-03-04"}
    )
    best = body["suggestions"][0]
    assert best["start_at"] == f"{DAY}T15:00:00Z"
    assert "your usual Tuesday time" in best["reasons"]
    anonymous = await _suggest(
        client, profile["public_handle"], **{"from": DAY, "to": "2027-03-04"}
    )
    assert anonymous["suggestions"][0]["start_at"] == f"{DAY}T09:00:00Z"  # the soonest


async def test_search_order_best(client: httpx.AsyncClient, clock: Clock) -> None:
    _a, ana = await bookable_provider(client, specialty="Chess")
    _b, lee = await bookable_provider(client, specialty="Chess")
    for hour in (10, 14):
        taken = await client.post(
            "/appointments/", json=guest_booking(ana["id"], f"{DAY}T{hour}:00:00Z")
        )
        assert taken.status_code == 201
    params = {"specialty": "chess", "from": DAY, "to": DAY, "limit": 100}
    timed = await client.get("/slots/search", params=params)
    best = await client.get("/slots/search", params={**params, "order": "best", "limit": 4})
    assert best.status_code == 200, best.text
    body = best.json()
    assert body["next_cursor"] is None
    assert len(body["items"]) == 4
    plain = timed.json()["items"]
    for item in body["items"]:
        assert {k: v for k, v in item.items() if k not in {"score", "reasons"}} in plain
        assert isinstance(item["score"], float | int)
    assert body["items"][0]["provider"]["public_handle"] == ana["public_handle"]  # next to 10:00
    refused = await client.get(
        "/slots/search",
        params={**params, "order": "best", "cursor": timed.json()["next_cursor"] or "x"},
    )
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_cursor")
    del lee


@pytest.fixture
async def modelled(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An app that loaded a model preferring later slots (earlier: a negative coefficient)."""
    model = tmp_path / "ranking-model.json"
    model.write_text(
        json.dumps(
            {
                "format": "slotwise-ranking",
                "version": "test-1",
                "features": list(FEATURE_NAMES),
                "coefficients": [-4.0 if name == "earlier" else 0.0 for name in FEATURE_NAMES],
                "intercept": 0.0,
            }
        )
    )
    application = create_app(make_settings(database_url, ranking_model_path=str(model)))
    application.dependency_overrides[get_now] = lambda: BOOKING_NOW
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
            yield c
    finally:
        await application.state.slotwise.aclose()


async def test_a_loaded_model_ranks(modelled: httpx.AsyncClient) -> None:
    _account, profile = await bookable_provider(modelled)
    body = await _suggest(modelled, profile["public_handle"], **{"from": DAY, "to": "2027-03-04"})
    assert body["ranked_by"] == "model:test-1"
    assert body["suggestions"][0]["start_at"].startswith("2027-03-04")  # the latest date first


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"format": "other"}',
        json.dumps(
            {"format": "slotwise-ranking", "version": 1, "features": ["x"], "coefficients": [1]}
        ),
    ],
)
async def test_an_unreadable_model_leaves_the_rules(
    database_url: str, tmp_path: Path, content: str
) -> None:
    model = tmp_path / "model.json"
    model.write_text(content)
    application = create_app(make_settings(database_url, ranking_model_path=str(model)))
    try:
        assert application.state.slotwise.ranker.ranked_by == "rules"
    finally:
        await application.state.slotwise.aclose()
    missing = create_app(make_settings(database_url, ranking_model_path=str(tmp_path / "none")))
    try:
        assert missing.state.slotwise.ranker.model is None
    finally:
        await missing.state.slotwise.aclose()
