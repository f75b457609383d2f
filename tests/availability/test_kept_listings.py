"""Kept listings brought up to date by bookings' changes equal listings computed afresh.

A worker keeps its slot listings and applies each booking's change to them (the booked
time taken out, a cancellation's put back, a move's both, a group session's seats counted)
instead of computing them again (`availability.cache`, `SlotListings.revised`). The
property: whatever sequence of bookings, seats, guests' holds, holds (``POST /holds``: taken,
booked with their token, released), cancellations and moves,
made by this worker or by another, a kept listing answers exactly what a worker with no
cache computes from the database, with buffers, day and week limits and a group service's
seats in play; and this worker's own changes are applied without a query. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from slotwise.config import Settings
from slotwise.main import create_app
from slotwise.state import get_now
from tests.availability.test_slot_cache import StatementCounter, cache_in_use, eventually
from tests.factories import BOOKING_NOW, bookable_provider, guest_booking, signed_in

DAYS = ("2027-03-03", "2027-03-04")  # a Wednesday and a Thursday, after BOOKING_NOW
HOURS = [f"{hour:02d}:{minute:02d}" for hour in range(9, 17) for minute in (0, 30)]
# The listings compared: each day, both days, and the whole week (its dates the day limit
# closes are not offered).
WINDOWS = (
    {"date": DAYS[0]},
    {"date": DAYS[1]},
    {"from": DAYS[0], "to": DAYS[1]},
    {"from": "2027-03-01", "to": "2027-03-07"},
)

# An operation: (what, by this worker or another, which day, which half hour, which earlier
# booking it acts on).
operations = st.lists(
    st.tuples(
        st.sampled_from(
            ("book", "book", "seat", "seat", "guest", "cancel", "move", "hold", "redeem", "release")
        ),
        st.booleans(),
        st.integers(0, len(DAYS) - 1),
        st.integers(0, len(HOURS) - 1),
        st.integers(0, 20),
    ),
    min_size=6,
    max_size=14,
)


@dataclass
class Run:
    kept: httpx.AsyncClient  # this worker, whose listings are kept
    kept_app: FastAPI
    other: httpx.AsyncClient  # another worker on the same database, with a cache of its own
    cold: httpx.AsyncClient  # a worker with no cache: the fresh computation
    on_postgresql: bool
    handle: str = ""
    provider_id: str = ""
    group_id: str = ""  # a group service (capacity 3): seats of its sessions
    clients: list[dict[str, str]] = field(default_factory=list)
    made: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # id, its headers
    holds: list[tuple[str, dict[str, object]]] = field(default_factory=list)  # token, its time
    answered_without_query: int = 0


def _client(application: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application)
    return httpx.AsyncClient(transport=transport, base_url="http://test/api/v1")


@asynccontextmanager
async def _workers(app_settings: Settings) -> AsyncIterator[Run]:
    applications = [
        create_app(app_settings),
        create_app(app_settings),
        create_app(app_settings.model_copy(update={"slot_cache_mb": 0})),
    ]
    for application in applications:
        application.dependency_overrides[get_now] = lambda: BOOKING_NOW
    clients = [_client(application) for application in applications]
    try:
        yield Run(
            kept=clients[0],
            kept_app=applications[0],
            other=clients[1],
            cold=clients[2],
            on_postgresql=app_settings.database_url.startswith("postgresql"),
        )
    finally:
        for client in clients:
            await client.aclose()
        for application in applications:
            await application.state.slotwise.aclose()


def _windows(run: Run) -> list[dict[str, str]]:
    """The listings compared: each of `WINDOWS`, and the group service's days."""
    group = [{"date": day, "service": run.group_id} for day in DAYS]
    return [*WINDOWS, *group, {"from": DAYS[0], "to": DAYS[1], "service": run.group_id}]


async def _listing(client: httpx.AsyncClient, run: Run, window: dict[str, str]) -> Any:
    response = await client.get(f"/providers/{run.handle}/slots", params=window)
    assert response.status_code == 200, response.text
    return response.json()


async def _same_as_fresh(run: Run, *, by_this_worker: bool) -> None:
    """Every window's kept listing is the fresh one (another worker's change reaches this
    one by the database's notices: at once on SQLite, soon on PostgreSQL)."""
    for window in _windows(run):
        fresh = await _listing(run.cold, run, window)
        statements = StatementCounter(run.kept_app)
        kept = await _listing(run.kept, run, window)
        if kept != fresh and run.on_postgresql and not by_this_worker:

            async def caught_up(window: dict[str, str] = window, fresh: Any = fresh) -> bool:
                return await _listing(run.kept, run, window) == fresh

            assert await eventually(caught_up), window
            continue
        assert kept == fresh, window
        if statements.count == 0:
            run.answered_without_query += 1


async def _operate(run: Run, operation: tuple[str, bool, int, int, int]) -> None:
    what, by_this_worker, day, hour, which = operation
    client = run.kept if by_this_worker else run.other
    start = f"{DAYS[day]}T{HOURS[hour]}:00Z"
    if what in ("book", "seat", "guest"):
        if what in ("book", "seat"):
            headers = run.clients[which % len(run.clients)]
            body: dict[str, object] = {"provider_id": run.provider_id, "start_datetime": start}
            if what == "seat":
                body["service_id"] = run.group_id
            response = await client.post("/appointments/", headers=headers, json=body)
        else:  # held until the guest verifies their email
            headers = {}
            body = guest_booking(run.provider_id, start)
            response = await client.post("/appointments/", json=body)
        assert response.status_code in (201, 409, 422), response.text  # 422: not a slot
        if response.status_code == 201 and headers:
            run.made.append((response.json()["id"], headers))
        return
    if what in ("hold", "redeem", "release"):
        await _hold(run, client, what, start, which)
        return
    if not run.made:
        return
    appointment_id, headers = run.made[which % len(run.made)]
    if what == "cancel":
        response = await client.post(
            f"/appointments/{appointment_id}/cancel", headers=headers, json={}
        )
    else:
        response = await client.post(
            f"/appointments/{appointment_id}/reschedule",
            headers=headers,
            json={"new_start_time": start},
        )
    assert response.status_code in (200, 409, 422), response.text


async def _hold(run: Run, client: httpx.AsyncClient, what: str, start: str, which: int) -> None:
    """A hold taken (of a seat, one time in two), booked with its token, or released."""
    if what == "hold":
        body: dict[str, object] = {"provider_id": run.provider_id, "start_datetime": start}
        if which % 2:
            body["service_id"] = run.group_id
        response = await client.post("/holds", json=body)
        assert response.status_code in (201, 409, 422), response.text
        if response.status_code == 201:
            run.holds.append((response.json()["hold_token"], body))
        return
    if not run.holds:
        return
    token, body = run.holds.pop(which % len(run.holds))
    if what == "release":
        response = await client.delete(f"/holds/{token}")
        assert response.status_code == 204, response.text
        return
    headers = run.clients[which % len(run.clients)]
    response = await client.post(
        "/appointments/", headers=headers, json={**body, "hold_token": token}
    )
    assert response.status_code in (201, 409), response.text  # 409: the client's own time
    if response.status_code == 201:
        run.made.append((response.json()["id"], headers))


async def _scenario(app_settings: Settings, steps: list[tuple[str, bool, int, int, int]]) -> int:
    async with _workers(app_settings) as run:
        account, profile = await bookable_provider(
            run.kept,
            session_duration_minutes=45,
            slot_interval_minutes=30,
            buffer_after_minutes=15,
            max_bookings_per_day=4,
            max_bookings_per_week=6,
            verify_guest_email=True,  # a guest's booking is held
        )
        run.handle, run.provider_id = str(profile["public_handle"]), str(profile["id"])
        group = await run.kept.post(
            "/providers/me/services",
            headers=account.headers,
            json={"name": "Class", "duration_minutes": 60, "capacity": 3},
        )
        assert group.status_code == 201, group.text
        run.group_id = group.json()["id"]
        for _ in range(6):
            client = await signed_in(run.kept)
            run.clients.append(client.headers)
        await cache_in_use(run.kept_app)
        await _same_as_fresh(run, by_this_worker=True)  # every window kept
        for step in steps:
            await _operate(run, step)
            await _same_as_fresh(run, by_this_worker=step[1])
        return run.answered_without_query


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings


@settings(
    max_examples=int(os.environ.get("SLOTWISE_KEPT_LISTING_EXAMPLES", "6")),
    deadline=None,
    # Each example runs three workers against a database: shrinking would take minutes, and
    # the failing sequence is reported as it is.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=operations)
def test_kept_listings_equal_fresh_ones_after_any_changes(
    app_settings: Settings, steps: list[tuple[str, bool, int, int, int]]
) -> None:
    served = asyncio.run(_scenario(app_settings, steps))
    if any(by_this_worker for _what, by_this_worker, *_rest in steps):
        assert served > 0  # some answers came from kept listings, revised without a query
