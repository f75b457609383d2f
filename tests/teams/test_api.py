"""Teams, members and team services: who manages them, and what members' shares are."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from slotwise.config import Settings
from tests.factories import bookable_provider, guest_booking, signed_in, signed_in_admin
from tests.teams.conftest import DAY, Crew


async def _team(client: httpx.AsyncClient, headers: dict[str, str], handle: str) -> httpx.Response:
    return await client.post("/teams", headers=headers, json={"public_handle": handle, "name": "T"})


async def test_a_provider_creates_and_owns_a_team(client: httpx.AsyncClient) -> None:
    owner, profile = await bookable_provider(client)
    created = await _team(client, owner.headers, "math-tutors")
    assert created.status_code == 201, created.text
    team = created.json()
    assert team["owner_id"] == owner.id
    assert (team["members"], team["services"]) == ([], [])
    joined = await client.post(
        f"/teams/{team['id']}/members",
        headers=owner.headers,
        json={"provider": profile["public_handle"], "priority": 5, "weight": 2},
    )
    assert joined.status_code == 201, joined.text
    assert joined.json() | {"provider_id": None} == {
        "provider_id": None,
        "public_handle": profile["public_handle"],
        "full_name": profile["full_name"],
        "timezone": "UTC",
        "priority": 5,
        "weight": 2,
    }
    again = await client.post(
        "/teams/math-tutors/members", headers=owner.headers, json={"provider": profile["id"]}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_member"
    public = await client.get("/teams/math-tutors")
    assert [m["public_handle"] for m in public.json()["members"]] == [profile["public_handle"]]
    listed = await client.get("/teams")
    assert listed.json()["total"] == 1
    taken = await _team(client, owner.headers, "math-tutors")
    assert (taken.status_code, taken.json()["code"]) == (409, "team_handle_taken")


async def test_clients_do_not_create_teams(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    refused = await _team(client, account.headers, "clients-team")
    assert (refused.status_code, refused.json()["code"]) == (403, "not_a_provider")


async def test_another_accounts_team_is_not_found(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    owner, _ = await bookable_provider(client)
    stranger, stranger_profile = await bookable_provider(client)
    team = (await _team(client, owner.headers, "owned-team")).json()
    for method, path, body in [
        ("PATCH", "/teams/owned-team", {"name": "Mine now"}),
        ("POST", "/teams/owned-team/members", {"provider": stranger_profile["public_handle"]}),
        (
            "POST",
            "/teams/owned-team/services",
            {"name": "X", "mode": "collective", "duration_minutes": 30},
        ),
        ("DELETE", f"/teams/{team['id']}/members/{stranger_profile['id']}", None),
    ]:
        response = await client.request(method, path, headers=stranger.headers, json=body)
        assert (response.status_code, response.json()["code"]) == (404, "team_not_found"), path
    admin = await signed_in_admin(client, settings)
    renamed = await client.patch("/teams/owned-team", headers=admin.headers, json={"name": "Ok"})
    assert renamed.json()["name"] == "Ok"


async def test_an_owner_adds_only_their_own_profile(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    owner, _ = await bookable_provider(client)
    _other, other_profile = await bookable_provider(client)
    await _team(client, owner.headers, "solo-team")
    refused = await client.post(
        "/teams/solo-team/members",
        headers=owner.headers,
        json={"provider": other_profile["public_handle"]},
    )
    assert (refused.status_code, refused.json()["code"]) == (404, "provider_not_found")
    admin = await signed_in_admin(client, settings)
    added = await client.post(
        "/teams/solo-team/members",
        headers=admin.headers,
        json={"provider": other_profile["public_handle"]},
    )
    assert added.status_code == 201
    removed = await client.delete(
        f"/teams/solo-team/members/{other_profile['public_handle']}", headers=owner.headers
    )
    assert removed.status_code == 204
    gone = await client.delete(
        f"/teams/solo-team/members/{other_profile['public_handle']}", headers=owner.headers
    )
    assert (gone.status_code, gone.json()["code"]) == (404, "team_member_not_found")


async def _shares(client: httpx.AsyncClient, crew: Crew, index: int) -> list[dict[str, Any]]:
    account, profile = crew.members[index]
    own = await client.get(
        f"/providers/{profile['public_handle']}/services", headers=account.headers
    )
    return [s for s in own.json() if s["name"].startswith("Meeting")]


async def test_each_member_offers_a_share_booked_through_the_team_only(
    client: httpx.AsyncClient, crew: Crew
) -> None:
    account, profile = crew.members[0]
    shares = await _shares(client, crew, 0)
    assert {(s["name"], s["duration_minutes"]) for s in shares} == {
        ("Meeting round_robin", 60),
        ("Meeting collective", 60),
    }
    public = await client.get(f"/providers/{profile['public_handle']}/services")
    assert [s for s in public.json() if s["name"].startswith("Meeting")] == []
    direct = await client.post(
        "/appointments/",
        json=guest_booking(profile["id"], f"{DAY}T10:00:00Z", service_id=shares[0]["id"]),
    )
    assert (direct.status_code, direct.json()["code"]) == (404, "service_not_found")
    held = await client.post(
        "/holds",
        json={
            "provider_id": profile["id"],
            "service_id": shares[0]["id"],
            "start_datetime": f"{DAY}T10:00:00Z",
        },
    )
    assert (held.status_code, held.json()["code"]) == (404, "service_not_found")
    changed = await client.patch(
        f"/providers/me/services/{shares[0]['id']}", headers=account.headers, json={"name": "Mine"}
    )
    assert (changed.status_code, changed.json()["code"]) == (409, "team_service_managed")
    searched = await client.get(
        "/slots/search", params={"service": "Meeting round_robin", "from": DAY}
    )
    assert searched.json()["items"] == []


async def test_a_team_service_change_reaches_every_share(
    client: httpx.AsyncClient, crew: Crew
) -> None:
    updated = await client.patch(
        f"/teams/{crew.handle}/services/{crew.round_robin['id']}",
        headers=crew.admin.headers,
        json={"duration_minutes": 30, "slot_interval_minutes": 30},
    )
    assert updated.status_code == 200, updated.text
    for index in range(3):
        share = next(s for s in await _shares(client, crew, index) if "round" in s["name"])
        assert (share["duration_minutes"], share["slot_interval_minutes"]) == (30, 30)
    slots = await client.get(
        f"/teams/{crew.handle}/slots", params={"service": crew.round_robin["id"], "from": DAY}
    )
    assert len(slots.json()["slots"]) == 16  # 09:00-17:00 every 30 minutes
    off = await client.patch(
        f"/teams/{crew.handle}/services/{crew.round_robin['id']}",
        headers=crew.admin.headers,
        json={"is_active": False},
    )
    assert off.json()["is_active"] is False
    gone = await client.get(
        f"/teams/{crew.handle}/slots", params={"service": crew.round_robin["id"], "from": DAY}
    )
    assert (gone.status_code, gone.json()["code"]) == (404, "team_service_not_found")


async def test_a_member_who_leaves_offers_nothing_more(
    client: httpx.AsyncClient, crew: Crew
) -> None:
    _account, profile = crew.members[2]
    left = await client.delete(
        f"/teams/{crew.handle}/members/{profile['id']}", headers=crew.admin.headers
    )
    assert left.status_code == 204
    slots = await client.get(
        f"/teams/{crew.handle}/slots", params={"service": crew.round_robin["id"], "from": DAY}
    )
    assert {handle for s in slots.json()["slots"] for handle in s["members"]} == {
        crew.members[0][1]["public_handle"],
        crew.members[1][1]["public_handle"],
    }
    back = await client.post(
        f"/teams/{crew.handle}/members",
        headers=crew.admin.headers,
        json={"provider": profile["public_handle"]},
    )
    assert back.status_code == 201
    assert len(await _shares(client, crew, 2)) == 2  # the same shares, offered again


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": DAY}, "validation_error"),
        ({"service": "x", "from": DAY}, "validation_error"),
        ({"from": "2027-03-05", "to": "2027-03-04"}, "invalid_window"),
        ({"from": "2027-03-01", "to": "2027-04-15"}, "window_too_long"),
    ],
)
async def test_bad_slot_queries(
    client: httpx.AsyncClient, crew: Crew, params: dict[str, str], code: str
) -> None:
    if "service" not in params and code != "validation_error":
        params = {**params, "service": crew.round_robin["id"]}
    response = await client.get(f"/teams/{crew.handle}/slots", params=params)
    assert (response.status_code, response.json()["code"]) == (422, code)
