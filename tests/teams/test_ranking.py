"""A team's slots ranked (order=best): the same slots, best first, each scored as its
member's (round robin: the member a booking would go to; collective: every member)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import guest_booking
from tests.teams.conftest import DAY, Crew


async def _slots(
    client: httpx.AsyncClient, crew: Crew, service: dict[str, Any], **params: str
) -> dict[str, Any]:
    response = await client.get(
        f"/teams/{crew.handle}/slots", params={"service": service["id"], "from": DAY, **params}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _busy(client: httpx.AsyncClient, crew: Crew, index: int, hour: int) -> None:
    """The member books of their own (their default session), outside the team."""
    taken = await client.post(
        "/appointments/",
        json=guest_booking(crew.members[index][1]["id"], f"{DAY}T{hour:02d}:00:00Z"),
    )
    assert taken.status_code == 201, taken.text


def _hour(slot: dict[str, Any]) -> str:
    return str(slot["start_at"][11:16])


async def test_ranking_only_reorders_the_slots(client: httpx.AsyncClient, crew: Crew) -> None:
    await _busy(client, crew, 1, 10)
    for service in (crew.round_robin, crew.collective):
        by_time = await _slots(client, crew, service)
        best = await _slots(client, crew, service, order="best")
        assert (by_time["order"], best["order"], best["ranked_by"]) == ("time", "best", "rules")
        assert "ranked_by" not in by_time
        assert all("score" not in slot for slot in by_time["slots"])
        scores = [slot["score"] for slot in best["slots"]]
        assert scores == sorted(scores, reverse=True)
        unscored = [
            {key: value for key, value in slot.items() if key not in ("score", "reasons")}
            for slot in best["slots"]
        ]
        assert sorted(unscored, key=lambda slot: slot["start_at"]) == by_time["slots"]


async def test_a_collective_slot_next_to_any_members_booking_ranks_first(
    client: httpx.AsyncClient, crew: Crew
) -> None:
    await _busy(client, crew, 1, 10)  # one member's own 10:00: 09:00 and 11:00 touch it
    best = await _slots(client, crew, crew.collective, order="best")
    hours = [_hour(slot) for slot in best["slots"]]
    assert hours == ["09:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00"]
    adjacent = "right next to another booking: keeps Crew's day without gaps"
    assert [adjacent in slot["reasons"] for slot in best["slots"]] == [True] * 2 + [False] * 5
    assert [slot["score"] for slot in best["slots"]] == [2.5, 2.5, 1.0, 1.0, 1.0, 1.0, 1.0]
