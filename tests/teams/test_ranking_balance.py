"""The balance rule's effect on a round-robin team's ranked slots, the other rules off."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from slotwise.config import Settings
from tests.conftest import make_settings
from tests.factories import Clock, guest_booking
from tests.teams.conftest import DAY, Crew, book, make_crew
from tests.teams.test_ranking import _busy, _hour


async def _best(client: httpx.AsyncClient, crew: Crew) -> list[dict[str, Any]]:
    response = await client.get(
        f"/teams/{crew.handle}/slots",
        params={"service": crew.round_robin["id"], "from": DAY, "order": "best"},
    )
    assert response.status_code == 200, response.text
    slots: list[dict[str, Any]] = response.json()["slots"]
    return slots


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The balance rule alone, to pin its effect."""
    return make_settings(
        database_url,
        ranking_weight_adjacent=0,
        ranking_weight_preferred=0,
        ranking_weight_earlier=0,
        ranking_weight_no_show=0,
    )


async def test_round_robin_balance_prefers_times_of_the_less_booked_member(
    client: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    crew = await make_crew(client, settings, size=2)
    for hour in (9, 10, 13):  # the second member's own time: only the first is free then
        await _busy(client, crew, 1, hour)
    for hour in (9, 10):  # so the team's 09:00 and 10:00 go to the first member
        booked = await book(client, crew, crew.round_robin, f"{DAY}T{hour:02d}:00:00Z")
        assert booked.status_code == 201, booked.text
    second_name = crew.members[1][1]["full_name"]
    best = await _best(client, crew)
    # 13:00 would go to the first member (2 bookings this month); every other time to the
    # second (none): those rank first, in time order, and say why.
    assert [(_hour(s), s["score"]) for s in best] == [
        ("11:00", 1.0),
        ("12:00", 1.0),
        ("14:00", 1.0),
        ("15:00", 1.0),
        ("16:00", 1.0),
        ("13:00", 0.0),
    ]
    fewer = f"{second_name} has fewer bookings than the others"
    assert all(s["reasons"] == [fewer] for s in best[:-1])
    assert best[-1]["reasons"] == []
    assert best[-1]["members"] == [crew.members[0][1]["public_handle"]]


async def test_round_robin_balance_counts_the_month_not_the_window(
    client: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    """The second member's three bookings on the 20th (outside the window asked for, in its
    month) outweigh the first's two that day: the first member takes every time, each with
    the same load, so no time is preferred (a count of the window alone would rank 13:00,
    the first member's alone, last)."""
    crew = await make_crew(client, settings, size=2)
    later = "2027-03-20"
    for hour in (9, 10, 11):  # the first member's own time on the 20th: the team's is the second's
        taken = await client.post(
            "/appointments/",
            json=guest_booking(crew.members[0][1]["id"], f"{later}T{hour:02d}:00:00Z"),
        )
        assert taken.status_code == 201, taken.text
        booked = await book(client, crew, crew.round_robin, f"{later}T{hour:02d}:00:00Z")
        assert booked.status_code == 201, booked.text
    for hour in (9, 10, 13):
        await _busy(client, crew, 1, hour)
    for hour in (9, 10):
        booked = await book(client, crew, crew.round_robin, f"{DAY}T{hour:02d}:00:00Z")
        assert booked.status_code == 201, booked.text
    best = await _best(client, crew)
    assert [(_hour(s), s["score"], s["reasons"]) for s in best] == [
        (hour, 0.0, []) for hour in ("11:00", "12:00", "13:00", "14:00", "15:00", "16:00")
    ]


async def test_round_robin_balance_counts_bookings_per_unit_of_weight(
    client: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    """The first member (weight 2) has two bookings, the second (weight 1) one: equally
    loaded, as round robin counts them, so no time is preferred (raw counts would rank
    every time of the second member's above the first's 13:00)."""
    crew = await make_crew(client, settings, size=2, **{"0": {"weight": 2}})
    for hour in (9, 10, 13):  # the second member's own time: only the first is free then
        await _busy(client, crew, 1, hour)
    for hour in (9, 10):
        booked = await book(client, crew, crew.round_robin, f"{DAY}T{hour:02d}:00:00Z")
        assert booked.status_code == 201, booked.text
    booked = await book(client, crew, crew.round_robin, f"{DAY}T11:00:00Z")
    assert booked.status_code == 201, booked.text
    assert booked.json()["assigned"][0]["public_handle"] == crew.members[1][1]["public_handle"]
    best = await _best(client, crew)
    assert [(_hour(s), s["score"], s["reasons"]) for s in best] == [
        (hour, 0.0, []) for hour in ("11:00", "12:00", "13:00", "14:00", "15:00", "16:00")
    ]
