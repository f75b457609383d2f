"""GET /slots/search: open slots across providers, merged by time, from their own listings."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from slotwise.config import Settings
from slotwise.main import create_app
from slotwise.state import get_now
from tests.availability.test_slot_cache import StatementCounter, cache_in_use
from tests.conftest import make_settings
from tests.factories import (
    Account,
    Clock,
    bookable_provider,
    guest_booking,
    signed_in_admin,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a Sunday
MONDAY, WEDNESDAY = "2026-03-02", "2026-03-04"
ZONES = ("Europe/Madrid", "America/New_York", "Asia/Tokyo")
Item = dict[str, Any]


@pytest.fixture
def clock(app: FastAPI) -> Clock:
    moved = Clock(NOW)
    app.dependency_overrides[get_now] = moved
    return moved


async def _provider(
    client: httpx.AsyncClient, zone: str, hours: tuple[str, str], **profile: object
) -> tuple[Account, dict[str, Any]]:
    values: dict[str, object] = {"specialty": "Mathematics", "timezone": zone}
    values.update(profile)
    return await bookable_provider(client, hours=hours, **values)


async def _service(
    client: httpx.AsyncClient, account: Account, name: str, minutes: int, **extra: object
) -> dict[str, Any]:
    body: dict[str, object] = {"name": name, "duration_minutes": minutes}
    body.update(extra)
    response = await client.post("/providers/me/services", headers=account.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
async def tutors(client: httpx.AsyncClient, clock: Clock) -> list[dict[str, Any]]:
    """Three maths tutors in three zones whose hours overlap in UTC, two offering a "Trial
    lesson"; a physics tutor; a maths tutor not accepting bookings."""
    made = []
    for zone, hours in zip(
        ZONES, [("09:00", "13:00"), ("05:00", "09:00"), ("17:00", "21:00")], strict=True
    ):
        account, profile = await _provider(client, zone, hours, session_duration_minutes=45)
        made.append({"account": account, "profile": profile})
    for index in (0, 1):
        made[index]["service"] = await _service(
            client, made[index]["account"], "Trial lesson", 30, slot_interval_minutes=20
        )
    await _service(client, made[2]["account"], "Exam review", 60)
    await _provider(client, "UTC", ("09:00", "17:00"), specialty="Physics")
    await _provider(client, "UTC", ("09:00", "17:00"), accepting_bookings=False)
    return made


async def _search(client: httpx.AsyncClient, **params: object) -> httpx.Response:
    return await client.get("/slots/search", params={k: str(v) for k, v in params.items()})


async def _all_pages(client: httpx.AsyncClient, **params: object) -> list[Item]:
    items: list[Item] = []
    cursor = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        response = await _search(client, **params, **extra)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= int(str(params.get("limit", 20)))
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def _listing(
    client: httpx.AsyncClient, handle: str, first: str, last: str, **params: object
) -> list[Item]:
    query = {"from": first, "to": last, **{k: str(v) for k, v in params.items()}}
    response = await client.get(f"/providers/{handle}/slots", params=query)
    assert response.status_code == 200, response.text
    slots: list[Item] = response.json()["slots"]
    return slots


def _instant(item: Item) -> datetime:
    return datetime.fromisoformat(item["start_at"])


def _key(item: Item) -> tuple[datetime, str, str]:
    service = item["service"]["id"] if item["service"] else ""
    return _instant(item), item["provider"]["id"], service


def _slot(item: Item) -> Item:
    """A search item's slot fields, as its provider's listing gives them."""
    return {k: v for k, v in item.items() if k not in {"provider", "service"}}


async def test_merged_in_time_order_each_provider_as_its_own_listing(
    client: httpx.AsyncClient, tutors: list[dict[str, Any]]
) -> None:
    response = await _search(
        client, specialty="mathematics", **{"from": MONDAY, "to": WEDNESDAY}, limit=100
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["providers"] == 3
    assert (body["from_date"], body["to_date"], body["client_timezone"]) == (
        MONDAY,
        WEDNESDAY,
        None,
    )
    items = body["items"]
    assert [_key(item) for item in items] == sorted(_key(item) for item in items)
    assert len({_instant(item) for item in items}) < len(items)  # equal starts do occur
    by_handle: dict[str, list[Item]] = {}
    for item in items:
        by_handle.setdefault(item["provider"]["public_handle"], []).append(item)
    assert set(by_handle) == {str(tutor["profile"]["public_handle"]) for tutor in tutors}
    for tutor in tutors:
        profile = tutor["profile"]
        own = by_handle[str(profile["public_handle"])]
        assert own[0]["provider"] == {
            "id": profile["id"],
            "public_handle": profile["public_handle"],
            "full_name": profile["full_name"],
            "timezone": profile["timezone"],
        }
        assert all(item["service"] is None for item in own)  # the default session
        listing = await _listing(client, str(profile["public_handle"]), MONDAY, WEDNESDAY)
        assert [_slot(item) for item in own] == listing
        assert len(listing) == 3 * 5  # 45 minutes every 45 over four hours, three days


async def test_service_by_name_any_case_or_by_id(
    client: httpx.AsyncClient, tutors: list[dict[str, Any]]
) -> None:
    window = {"from": MONDAY, "to": MONDAY}
    items = await _all_pages(client, service="  trial LESSON ", **window, limit=7)
    assert {item["provider"]["id"] for item in items} == {
        tutors[0]["profile"]["id"],
        tutors[1]["profile"]["id"],
    }
    for tutor in tutors[:2]:
        service = tutor["service"]
        own = [item for item in items if item["provider"]["id"] == tutor["profile"]["id"]]
        assert {json.dumps(item["service"]) for item in own} == {
            json.dumps({"id": service["id"], "name": "Trial lesson", "duration_minutes": 30})
        }
        listing = await _listing(
            client, str(tutor["profile"]["public_handle"]), MONDAY, MONDAY, service=service["id"]
        )
        assert [_slot(item) for item in own] == listing
        assert len(listing) == 11  # 30 minutes every 20 over four hours
    by_id = await _all_pages(client, service=tutors[1]["service"]["id"], **window)
    assert {item["provider"]["id"] for item in by_id} == {tutors[1]["profile"]["id"]}
    assert len(by_id) == 11


async def test_filters_combine(client: httpx.AsyncClient, tutors: list[dict[str, Any]]) -> None:
    window = {"from": MONDAY, "to": MONDAY, "limit": 100}
    physics = await _all_pages(client, specialty="Physics", **window)
    assert {item["provider"]["timezone"] for item in physics} == {"UTC"}
    handle = str(tutors[2]["profile"]["public_handle"])
    by_text = await _all_pages(client, q=handle.upper()[2:], **window)
    assert {item["provider"]["public_handle"] for item in by_text} == {handle}
    both = await _all_pages(client, specialty="Physics", service="Trial lesson", **window)
    assert both == []
    nothing = await _search(client, q="nobody-like-this", **{"from": MONDAY})
    assert nothing.json() | {"items": None} == {
        "from_date": MONDAY,
        "to_date": "2026-03-08",  # a week by default
        "client_timezone": None,
        "providers": 0,
        "items": None,
        "next_cursor": None,
    }
    assert nothing.json()["items"] == []


async def test_pages_cover_every_slot_exactly_once(
    client: httpx.AsyncClient, tutors: list[dict[str, Any]]
) -> None:
    window = {"specialty": "Mathematics", "from": MONDAY, "to": WEDNESDAY}
    whole = (await _search(client, **window, limit=100)).json()
    assert whole["next_cursor"] is None
    for size in (1, 5, 12, 35):
        paged = await _all_pages(client, **window, limit=size)
        assert paged == whole["items"], size
    first = (await _search(client, **window, limit=5)).json()
    assert len(first["items"]) == 5
    assert first["next_cursor"] is not None


async def test_client_zone_picks_the_client_dates(
    client: httpx.AsyncClient, tutors: list[dict[str, Any]]
) -> None:
    """With tz, from/to are the client's dates: Monday in Auckland (UTC+13) is Sunday 11:00
    UTC to Monday 11:00 UTC, which holds part of New York's Sunday and of Madrid's and
    Tokyo's Monday."""
    zone = "Pacific/Auckland"
    items = await _all_pages(
        client, specialty="Mathematics", **{"from": MONDAY}, to=MONDAY, tz=zone
    )
    start = datetime(2026, 3, 2, tzinfo=ZoneInfo(zone))
    end = start + timedelta(days=1)
    assert items
    assert all(start <= _instant(item) < end for item in items)
    assert all(
        datetime.fromisoformat(item["client_start_at"]).utcoffset() == timedelta(hours=13)
        for item in items
    )
    for tutor in tutors:
        profile = tutor["profile"]
        own = [_slot(item) for item in items if item["provider"]["id"] == profile["id"]]
        listing = await _listing(
            client, str(profile["public_handle"]), "2026-02-28", "2026-03-04", tz=zone
        )
        assert own == [slot for slot in listing if start <= _instant(slot) < end]
    assert {item["provider"]["timezone"] for item in items} == set(ZONES)
    assert {
        _instant(item).astimezone(ZoneInfo(item["provider"]["timezone"])).day for item in items
    } == {1, 2}


async def test_notice_and_horizon_cut_as_the_listing(
    client: httpx.AsyncClient, tutors: list[dict[str, Any]], clock: Clock
) -> None:
    """Slots the policy does not admit at the request's now are left out, also from a kept
    listing as time passes."""
    window = {"specialty": "Mathematics", "from": MONDAY, "to": MONDAY, "limit": 100}
    before = await _all_pages(client, **window)
    clock.now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    after = await _all_pages(client, **window)
    assert after == [item for item in before if _instant(item) >= clock.now]
    assert len(after) < len(before)


async def test_a_booking_leaves_the_search(
    client: httpx.AsyncClient, tutors: list[dict[str, Any]]
) -> None:
    window = {"specialty": "Mathematics", "from": MONDAY, "to": MONDAY, "limit": 100}
    before = await _all_pages(client, **window)
    taken = before[0]
    booked = await client.post(
        "/appointments/", json=guest_booking(taken["provider"]["id"], taken["start_at"])
    )
    assert booked.status_code == 201, booked.text
    after = await _all_pages(client, **window)
    assert taken not in after
    assert [item for item in before if item != taken] == after


async def test_delisted_providers_leave_the_search(
    client: httpx.AsyncClient, settings: Settings, tutors: list[dict[str, Any]]
) -> None:
    window = {"specialty": "Mathematics", "from": MONDAY, "to": MONDAY}
    await _all_pages(client, **window)  # their listings are kept
    admin = await signed_in_admin(client, settings)
    blocked = await client.patch(
        f"/users/{tutors[0]['account'].id}", headers=admin.headers, json={"is_blocked": True}
    )
    assert blocked.status_code == 200, blocked.text
    closed = await client.patch(
        "/providers/me", headers=tutors[1]["account"].headers, json={"accepting_bookings": False}
    )
    assert closed.status_code == 200, closed.text
    response = await _search(client, **window)
    assert response.json()["providers"] == 1
    assert {item["provider"]["id"] for item in response.json()["items"]} == {
        tutors[2]["profile"]["id"]
    }


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"from": MONDAY}, 400, "search_filter_required"),
        ({"from": MONDAY, "q": ""}, 422, "validation_error"),
        ({"q": "math"}, 422, "validation_error"),  # from is required
        ({"q": "math", "from": MONDAY, "to": "2026-03-16"}, 400, "search_window_too_long"),
        ({"q": "math", "from": MONDAY, "to": "2026-03-01"}, 422, "invalid_window"),
        ({"q": "math", "from": MONDAY, "tz": "Mars/Olympus"}, 422, "validation_error"),
        ({"q": "math", "from": MONDAY, "limit": 0}, 422, "validation_error"),
        ({"q": "math", "from": MONDAY, "limit": 101}, 422, "validation_error"),
        ({"q": "math", "from": MONDAY, "cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"q": "math", "from": MONDAY, "cursor": "W10"}, 400, "invalid_cursor"),  # "[]"
        ({"q": "math\x00", "from": MONDAY}, 422, "validation_error"),
    ],
)
async def test_bad_searches(
    client: httpx.AsyncClient, params: dict[str, object], status: int, code: str
) -> None:
    response = await _search(client, **params)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


async def test_window_limit_details(client: httpx.AsyncClient) -> None:
    response = await _search(client, q="x", **{"from": MONDAY, "to": "2026-03-15"})
    assert response.status_code == 200  # 14 days: the default cap
    response = await _search(client, q="x", **{"from": MONDAY, "to": "2026-03-16"})
    assert response.json()["details"] == {"max_days": 14}


async def test_a_cursor_belongs_to_its_query(
    client: httpx.AsyncClient, tutors: list[dict[str, Any]]
) -> None:
    window = {"from": MONDAY, "to": MONDAY, "limit": 2}
    cursor = (await _search(client, specialty="Mathematics", **window)).json()["next_cursor"]
    for other in ({"specialty": "Physics"}, {"specialty": "Mathematics", "tz": "UTC"}):
        refused = await _search(client, **other, **window, cursor=cursor)
        assert refused.status_code == 400
        assert refused.json()["code"] == "invalid_cursor"
    raw = json.loads(base64.urlsafe_b64decode(cursor + "=="))
    raw[2] = "2026-03-02T10:00:00"  # no offset
    naive = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode()
    refused = await _search(client, specialty="Mathematics", **window, cursor=naive)
    assert refused.json()["code"] == "invalid_cursor"


@pytest.fixture
async def capped(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(make_settings(database_url, search_max_providers=2))
    application.dependency_overrides[get_now] = lambda: NOW
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
            yield c
    finally:
        await application.state.slotwise.aclose()


async def test_too_many_providers_is_refused(capped: httpx.AsyncClient) -> None:
    for zone in ZONES[:2]:
        await _provider(capped, zone, ("09:00", "10:00"))
    fits = await _search(capped, specialty="Mathematics", **{"from": MONDAY})
    assert fits.status_code == 200
    assert fits.json()["providers"] == 2
    await _provider(capped, ZONES[2], ("09:00", "10:00"))
    refused = await _search(capped, specialty="Mathematics", **{"from": MONDAY})
    assert refused.status_code == 400
    assert refused.json()["code"] == "search_too_broad"
    assert refused.json()["details"] == {"max_providers": 2}


async def test_documented(app: FastAPI) -> None:
    operation = app.openapi()["paths"]["/api/v1/slots/search"]["get"]
    assert {"400", "422"} <= set(operation["responses"])
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert names == {"service", "specialty", "q", "from", "to", "tz", "limit", "cursor", "order"}
    assert date.fromisoformat(MONDAY).weekday() == 0


async def test_a_repeated_search_reads_the_kept_listings(
    client: httpx.AsyncClient, app: FastAPI, tutors: list[dict[str, Any]]
) -> None:
    """Only the query that finds the providers runs again: their listings are the slot
    cache's, as a single provider's listing is."""
    await cache_in_use(app)
    statements = StatementCounter(app)
    params = {"specialty": "Mathematics", "from": MONDAY, "to": WEDNESDAY, "limit": 100}
    first = await _search(client, **params)
    computed = statements.count
    again = await _search(client, **params)
    assert computed > 3
    assert statements.count - computed == 1  # which providers match
    assert again.content == first.content
