"""Invitations to a team (invite, accept, decline, withdraw) and a member leaving by themself."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from slotwise.config import Settings
from slotwise.notifications import render
from slotwise.notifications.models import OutboxMessage
from slotwise.teams import repository as team_repository
from slotwise.teams.models import InvitationStatus, TeamInvitation
from tests.factories import (
    Account,
    Clock,
    bookable_provider,
    signed_in,
    signed_in_admin,
)
from tests.teams.conftest import DAY, Crew, book

MINE = "/providers/me/team-invitations"


async def _invite(
    client: httpx.AsyncClient, who: Account, team: str, provider: Any, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/teams/{team}/invitations", headers=who.headers, json={"provider": provider, **extra}
    )


async def _owned_team(client: httpx.AsyncClient, handle: str) -> tuple[Account, dict[str, Any]]:
    """A team owned by a provider (not an admin), with a round-robin service."""
    owner, _profile = await bookable_provider(client)
    created = await client.post(
        "/teams", headers=owner.headers, json={"public_handle": handle, "name": "Tutors"}
    )
    assert created.status_code == 201, created.text
    made = await client.post(
        f"/teams/{handle}/services",
        headers=owner.headers,
        json={"name": "Lesson", "mode": "round_robin", "duration_minutes": 60},
    )
    assert made.status_code == 201, made.text
    return owner, created.json() | {"service": made.json()}


async def test_an_invited_provider_accepts_and_joins(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> None:
    owner, team = await _owned_team(client, "tutors")
    invited, profile = await bookable_provider(client)
    sent = await _invite(client, owner, "tutors", profile["public_handle"], priority=3, weight=2)
    assert sent.status_code == 201, sent.text
    invitation = sent.json()
    assert invitation | {"id": None, "created_at": None} == {
        "id": None,
        "team": {"id": team["id"], "public_handle": "tutors", "name": "Tutors"},
        "provider": {
            "id": profile["id"],
            "public_handle": profile["public_handle"],
            "full_name": profile["full_name"],
        },
        "status": "pending",
        "priority": 3,
        "weight": 2,
        "created_at": None,
        "responded_at": None,
    }
    assert datetime.fromisoformat(invitation["created_at"]).utcoffset() is not None
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = (
            await session.scalars(select(OutboxMessage).filter_by(kind="team_invitation"))
        ).all()
    assert [row.recipient_email for row in rows] == [invited.email]
    mail = render.email(rows[0], sender="Slotwise <no-reply@example.com>")
    assert mail["Subject"] == "You are invited to join the team Tutors"
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert f"/providers/me/team-invitations/{invitation['id']}/accept" in body
    pending = await client.get(MINE, headers=invited.headers)
    assert [i["id"] for i in pending.json()["items"]] == [invitation["id"]]

    accepted = await client.post(f"{MINE}/{invitation['id']}/accept", headers=invited.headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert datetime.fromisoformat(accepted.json()["responded_at"]).utcoffset() is not None
    members = (await client.get("/teams/tutors")).json()["members"]
    assert [(m["public_handle"], m["priority"], m["weight"]) for m in members] == [
        (profile["public_handle"], 3, 2)
    ]
    slots = await client.get(
        "/teams/tutors/slots", params={"service": team["service"]["id"], "from": DAY}
    )
    assert {h for s in slots.json()["slots"] for h in s["members"]} == {profile["public_handle"]}
    assert (await client.get(MINE, headers=invited.headers)).json()["total"] == 0
    listed = await client.get("/teams/tutors/invitations", headers=owner.headers)
    assert [i["status"] for i in listed.json()["items"]] == ["accepted"]
    again = await client.post(f"{MINE}/{invitation['id']}/accept", headers=invited.headers)
    assert (again.status_code, again.json()["code"]) == (409, "team_invitation_not_pending")


async def test_inviting_refusals(client: httpx.AsyncClient, settings: Settings, crew: Crew) -> None:
    member = crew.members[0][1]
    taken = await _invite(client, crew.admin, crew.handle, member["public_handle"])
    assert (taken.status_code, taken.json()["code"]) == (409, "already_member")
    _account, outsider = await bookable_provider(client)
    first = await _invite(client, crew.admin, crew.handle, outsider["id"])
    assert first.status_code == 201, first.text
    twice = await _invite(client, crew.admin, crew.handle, outsider["public_handle"])
    assert (twice.status_code, twice.json()["code"]) == (409, "already_invited")
    a_client = await signed_in(client)
    nobody = await _invite(client, crew.admin, crew.handle, a_client.id)
    assert (nobody.status_code, nobody.json()["code"]) == (404, "provider_not_found")
    bad = await _invite(client, crew.admin, crew.handle, outsider["id"], weight=0)
    assert (bad.status_code, bad.json()["code"]) == (422, "validation_error")


async def test_declined_and_withdrawn_invitations_cannot_be_accepted(
    client: httpx.AsyncClient, crew: Crew, clock: Clock
) -> None:
    invited, profile = await bookable_provider(client)
    first = (await _invite(client, crew.admin, crew.handle, profile["id"])).json()
    declined = await client.post(f"{MINE}/{first['id']}/decline", headers=invited.headers)
    assert declined.json()["status"] == "declined"
    late = await client.post(f"{MINE}/{first['id']}/accept", headers=invited.headers)
    assert (late.status_code, late.json()["code"]) == (409, "team_invitation_not_pending")

    clock.now += timedelta(minutes=5)
    second = await _invite(client, crew.admin, crew.handle, profile["id"])  # invited again
    assert second.status_code == 201, second.text
    path = f"/teams/{crew.handle}/invitations/{second.json()['id']}"
    withdrawn = await client.delete(path, headers=crew.admin.headers)
    assert withdrawn.status_code == 204
    for answer in ("accept", "decline"):
        refused = await client.post(
            f"{MINE}/{second.json()['id']}/{answer}", headers=invited.headers
        )
        assert (refused.status_code, refused.json()["code"]) == (409, "team_invitation_not_pending")
    twice = await client.delete(path, headers=crew.admin.headers)
    assert (twice.status_code, twice.json()["code"]) == (409, "team_invitation_not_pending")
    listed = await client.get(f"/teams/{crew.handle}/invitations", headers=crew.admin.headers)
    assert [i["status"] for i in listed.json()["items"]] == ["withdrawn", "declined"]
    members = (await client.get(f"/teams/{crew.handle}")).json()["members"]
    assert profile["public_handle"] not in {m["public_handle"] for m in members}


async def test_another_providers_or_teams_invitation_is_not_found(
    client: httpx.AsyncClient, crew: Crew
) -> None:
    _invited, profile = await bookable_provider(client)
    invitation = (await _invite(client, crew.admin, crew.handle, profile["id"])).json()
    other, _ = await bookable_provider(client)
    for answer in ("accept", "decline"):
        response = await client.post(f"{MINE}/{invitation['id']}/{answer}", headers=other.headers)
        assert (response.status_code, response.json()["code"]) == (
            404,
            "team_invitation_not_found",
        )
    assert (await client.get(MINE, headers=other.headers)).json()["items"] == []
    owner, _team = await _owned_team(client, "other-team")
    foreign = await client.delete(
        f"/teams/other-team/invitations/{invitation['id']}", headers=owner.headers
    )
    assert (foreign.status_code, foreign.json()["code"]) == (404, "team_invitation_not_found")
    for method, path, body in [
        ("POST", f"/teams/{crew.handle}/invitations", {"provider": profile["id"]}),
        ("GET", f"/teams/{crew.handle}/invitations", None),
        ("DELETE", f"/teams/{crew.handle}/invitations/{invitation['id']}", None),
    ]:
        response = await client.request(method, path, headers=owner.headers, json=body)
        assert (response.status_code, response.json()["code"]) == (404, "team_not_found"), path
    a_client = await signed_in(client)
    refused = await client.get(MINE, headers=a_client.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_a_provider")
    assert (await client.get(MINE)).status_code == 401


async def test_a_member_leaves_and_keeps_their_bookings(
    client: httpx.AsyncClient, settings: Settings, crew: Crew
) -> None:
    booked = await book(client, crew, crew.collective, f"{DAY}T12:00:00Z")
    assert booked.status_code == 201, booked.text
    leaving, profile = crew.members[1]
    left = await client.delete(f"/teams/{crew.handle}/members/me", headers=leaving.headers)
    assert left.status_code == 204
    members = (await client.get(f"/teams/{crew.handle}")).json()["members"]
    assert profile["public_handle"] not in {m["public_handle"] for m in members}
    theirs = await client.get("/appointments/me", headers=leaving.headers)
    assert [a["start_at"] for a in theirs.json()["items"]] == [f"{DAY}T12:00:00Z"]
    again = await client.delete(f"/teams/{crew.handle}/members/me", headers=leaving.headers)
    assert (again.status_code, again.json()["code"]) == (404, "team_member_not_found")
    admin = await signed_in_admin(client, settings)  # not a provider: no membership of its own
    refused = await client.delete(f"/teams/{crew.handle}/members/me", headers=admin.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_a_provider")


async def test_the_database_keeps_one_pending_invitation_per_team_and_provider(
    client: httpx.AsyncClient, app: FastAPI, crew: Crew
) -> None:
    """What the route's check cannot (two invitations at once): the partial unique index."""
    _invited, profile = await bookable_provider(client)
    first = (await _invite(client, crew.admin, crew.handle, profile["id"])).json()
    database = app.state.slotwise.db

    def pending() -> TeamInvitation:
        return TeamInvitation(
            team_id=uuid.UUID(crew.team["id"]),
            provider_id=uuid.UUID(str(profile["id"])),
            status=InvitationStatus.PENDING,
        )

    with pytest.raises(IntegrityError):
        async with database.transaction(writes=True) as session:
            session.add(pending())
    withdrawn = await client.delete(
        f"/teams/{crew.handle}/invitations/{first['id']}", headers=crew.admin.headers
    )
    assert withdrawn.status_code == 204  # an answered invitation does not count
    async with database.transaction(writes=True) as session:
        session.add(pending())


async def test_answers_at_once_are_taken_one_after_the_other(
    client: httpx.AsyncClient, crew: Crew
) -> None:
    invited, profile = await bookable_provider(client)
    invitation = (await _invite(client, crew.admin, crew.handle, profile["id"])).json()
    path = f"{MINE}/{invitation['id']}"
    answers = await asyncio.gather(
        client.post(f"{path}/accept", headers=invited.headers),
        client.post(f"{path}/accept", headers=invited.headers),
        client.post(f"{path}/decline", headers=invited.headers),
        client.delete(
            f"/teams/{crew.handle}/invitations/{invitation['id']}", headers=crew.admin.headers
        ),
    )
    codes = [a.status_code for a in answers]
    assert sorted(codes)[-3:] == [409, 409, 409], [a.text for a in answers]
    assert sorted(codes)[0] in {200, 204}
    members = (await client.get(f"/teams/{crew.handle}")).json()["members"]
    joined = profile["public_handle"] in {m["public_handle"] for m in members}
    assert joined == (codes[0] == 200 or codes[1] == 200)


async def test_invitations_at_once_make_one(client: httpx.AsyncClient, crew: Crew) -> None:
    _invited, profile = await bookable_provider(client)
    sent = await asyncio.gather(
        *(_invite(client, crew.admin, crew.handle, profile["id"]) for _ in range(4))
    )
    assert sorted(s.status_code for s in sent) == [201, 409, 409, 409], [s.text for s in sent]
    assert {s.json()["code"] for s in sent if s.status_code == 409} == {"already_invited"}
    listed = await client.get(f"/teams/{crew.handle}/invitations", headers=crew.admin.headers)
    assert listed.json()["total"] == 1


async def test_an_invitation_passing_the_check_in_a_race_is_refused_by_the_index(
    client: httpx.AsyncClient, crew: Crew, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check for a pending invitation and the insert are not one step: one that passes
    the check while another is being written (here, the check made to pass) is refused by
    the partial unique index, as already_invited, not a 500; the first stays the one."""
    _invited, profile = await bookable_provider(client)
    first = await _invite(client, crew.admin, crew.handle, profile["id"])
    assert first.status_code == 201, first.text

    async def none_pending(*_args: object) -> bool:
        return False

    monkeypatch.setattr(team_repository, "has_pending_invitation", none_pending)
    again = await _invite(client, crew.admin, crew.handle, profile["id"])
    assert (again.status_code, again.json()["code"]) == (409, "already_invited")
    listed = await client.get(f"/teams/{crew.handle}/invitations", headers=crew.admin.headers)
    assert [one["id"] for one in listed.json()["items"]] == [first.json()["id"]]


async def test_one_provider_added_at_once_joins_once(client: httpx.AsyncClient, crew: Crew) -> None:
    """Additions that pass the membership check together: one joins, the others are told
    the provider already is a member (the table's key decides), never a 500."""
    _added, profile = await bookable_provider(client)
    invitation = (await _invite(client, crew.admin, crew.handle, profile["id"])).json()
    sent = await asyncio.gather(
        *(
            client.post(
                f"/teams/{crew.handle}/members",
                headers=crew.admin.headers,
                json={"provider": profile["id"]},
            )
            for _ in range(3)
        ),
        client.post(f"{MINE}/{invitation['id']}/accept", headers=_added.headers),
    )
    codes = sorted(s.status_code for s in sent)
    assert codes.count(409) == 3, [s.text for s in sent]
    assert codes[0] in {200, 201}
    assert {s.json()["code"] for s in sent if s.status_code == 409} == {"already_member"}
    members = (await client.get(f"/teams/{crew.handle}")).json()["members"]
    assert [m["public_handle"] for m in members].count(profile["public_handle"]) == 1
