"""Provider profiles, services, the public listing, and the /tutors and /doctors aliases."""

from __future__ import annotations

import httpx
import pytest

from slotwise.config import Settings
from tests.factories import provider_with_profile, signed_in, signed_in_admin


async def test_provider_creates_reads_and_updates_profile(client: httpx.AsyncClient) -> None:
    account = await signed_in(client, "provider")
    created = await client.post(
        "/providers/me",
        headers=account.headers,
        json={
            "public_handle": "ana-math",
            "specialty": "Math",
            "bio": "Algebra",
            "session_duration_minutes": 45,
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["timezone"] == "America/Guayaquil"
    assert body["requires_confirmation"] is True
    assert body["cancellation_window_minutes"] == 120
    assert body["slot_interval_minutes"] is None
    assert body["full_name"] == "Test Person"
    me = await client.get("/providers/me", headers=account.headers)
    assert me.json()["public_handle"] == "ana-math"
    updated = await client.put(
        "/providers/me",
        headers=account.headers,
        json={"timezone": "Europe/Madrid", "min_notice_minutes": 60, "bio": None},
    )
    assert updated.status_code == 200
    assert updated.json()["timezone"] == "Europe/Madrid"
    assert updated.json()["bio"] is None
    assert updated.json()["session_duration_minutes"] == 45


async def test_timezone_defaults_to_users_preference(client: httpx.AsyncClient) -> None:
    account = await signed_in(client, "provider")
    await client.patch("/users/me", headers=account.headers, json={"timezone": "Asia/Kolkata"})
    created = await client.post(
        "/providers/me", headers=account.headers, json={"public_handle": "kolkata-doc"}
    )
    assert created.json()["timezone"] == "Asia/Kolkata"


async def test_client_creating_a_profile_is_403(client: httpx.AsyncClient) -> None:
    account = await signed_in(client, "client")
    response = await client.post(
        "/providers/me", headers=account.headers, json={"public_handle": "sneaky"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "not_a_provider"
    assert (await client.get("/providers/me", headers=account.headers)).status_code == 403


async def test_profile_needs_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.post("/providers/me", json={"public_handle": "abc"})).status_code == 401
    assert (await client.get("/providers/me")).status_code == 401


async def test_second_profile_and_taken_handle_are_409(client: httpx.AsyncClient) -> None:
    first, profile = await provider_with_profile(client)
    again = await client.post(
        "/providers/me", headers=first.headers, json={"public_handle": "another-one"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "provider_profile_exists"
    second = await signed_in(client, "provider")
    taken = await client.post(
        "/providers/me", headers=second.headers, json={"public_handle": profile["public_handle"]}
    )
    assert taken.status_code == 409
    assert taken.json()["code"] == "handle_taken"
    await client.post("/providers/me", headers=second.headers, json={"public_handle": "free-one"})
    clash = await client.put(
        "/providers/me", headers=second.headers, json={"public_handle": profile["public_handle"]}
    )
    assert clash.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"public_handle": "ab"},
        {"public_handle": "Upper-Case"},
        {"public_handle": "-leading"},
        {"public_handle": "double--hyphen"},
        {"public_handle": "x" * 41},
        {"public_handle": "me"},
        {"public_handle": "availability"},
        {"public_handle": "fine-handle", "timezone": "Mars/Base"},
        {"public_handle": "fine-handle", "session_duration_minutes": 0},
        {"public_handle": "fine-handle", "buffer_before_minutes": -5},
        {"public_handle": "fine-handle", "user_id": "00000000-0000-0000-0000-000000000000"},
    ],
)
async def test_invalid_profile_is_422(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    account = await signed_in(client, "provider")
    response = await client.post("/providers/me", headers=account.headers, json=body)
    assert response.status_code == 422, body
    assert response.json()["code"] == "validation_error"


async def test_public_profile_by_handle_id_and_user_id(client: httpx.AsyncClient) -> None:
    account, profile = await provider_with_profile(client, specialty="Physics")
    for ref in (profile["public_handle"], profile["id"], account.id):
        response = await client.get(f"/providers/{ref}")
        assert response.status_code == 200, ref
        assert response.json()["id"] == profile["id"]
        assert response.json()["services"] == []
    missing = await client.get("/providers/no-such-handle")
    assert missing.status_code == 404
    assert missing.json()["code"] == "provider_not_found"
    assert (await client.get("/providers/00000000-0000-0000-0000-000000000000")).status_code == 404


async def test_seed_aliases_answer_the_same(client: httpx.AsyncClient) -> None:
    account = await signed_in(client, "provider")
    created = await client.post(
        "/tutors/me", headers=account.headers, json={"public_handle": "tutor-tom"}
    )
    assert created.status_code == 201
    for prefix in ("/tutors", "/doctors", "/providers"):
        assert (await client.get(f"{prefix}/tutor-tom")).json()["id"] == created.json()["id"]
        assert (await client.get(f"{prefix}/me", headers=account.headers)).status_code == 200
    listing = await client.get("/doctors")
    assert listing.json()["total"] == 1


async def test_listing_searches_and_paginates(client: httpx.AsyncClient) -> None:
    await provider_with_profile(client, specialty="Math", bio="Calculus and 100% algebra")
    await provider_with_profile(client, specialty="math")
    await provider_with_profile(client, specialty="Piano")
    everyone = await client.get("/providers", params={"limit": 2})
    assert everyone.json()["total"] == 3
    assert len(everyone.json()["items"]) == 2
    math = await client.get("/providers", params={"specialty": "MATH"})
    assert math.json()["total"] == 2
    text = await client.get("/providers", params={"q": "calculus"})
    assert text.json()["total"] == 1
    percent = await client.get("/providers", params={"q": "100%"})
    assert percent.json()["total"] == 1
    wildcard = await client.get("/providers", params={"q": "%"})
    assert wildcard.json()["total"] == 1


async def test_services_lifecycle_and_visibility(client: httpx.AsyncClient) -> None:
    account, profile = await provider_with_profile(client)
    intro = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Intro call", "duration_minutes": 30, "buffer_after_minutes": 5},
    )
    assert intro.status_code == 201
    session = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Session", "duration_minutes": 60},
    )
    sid = session.json()["id"]
    renamed = await client.patch(
        f"/providers/me/services/{sid}", headers=account.headers, json={"name": "Full session"}
    )
    assert renamed.json()["name"] == "Full session"
    gone = await client.delete(f"/providers/me/services/{sid}", headers=account.headers)
    assert gone.json()["is_active"] is False
    public = await client.get(f"/providers/{profile['public_handle']}")
    assert [s["name"] for s in public.json()["services"]] == ["Intro call"]
    public_list = await client.get(f"/providers/{profile['public_handle']}/services")
    assert len(public_list.json()) == 1
    own_list = await client.get("/providers/me/services", headers=account.headers)
    assert len(own_list.json()) == 2


async def test_services_errors(client: httpx.AsyncClient) -> None:
    owner, profile = await provider_with_profile(client)
    other, _ = await provider_with_profile(client)
    created = await client.post(
        "/providers/me/services",
        headers=owner.headers,
        json={"name": "Intro", "duration_minutes": 30},
    )
    sid = created.json()["id"]
    # Someone else's service through their own profile: not found.
    foreign = await client.patch(
        f"/providers/me/services/{sid}", headers=other.headers, json={"name": "Mine now"}
    )
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "service_not_found"
    # Writing to someone else's profile: forbidden.
    forbidden = await client.post(
        f"/providers/{profile['public_handle']}/services",
        headers=other.headers,
        json={"name": "X", "duration_minutes": 30},
    )
    assert forbidden.status_code == 403
    bad = await client.post(
        "/providers/me/services", headers=owner.headers, json={"name": "", "duration_minutes": 1}
    )
    assert bad.status_code == 422


async def test_admin_manages_any_profile(client: httpx.AsyncClient, settings: Settings) -> None:
    admin = await signed_in_admin(client, settings)
    _, profile = await provider_with_profile(client)
    response = await client.put(
        f"/providers/{profile['id']}", headers=admin.headers, json={"accepting_bookings": False}
    )
    assert response.status_code == 200
    assert response.json()["accepting_bookings"] is False
    service = await client.post(
        f"/providers/{profile['public_handle']}/services",
        headers=admin.headers,
        json={"name": "Admin-made", "duration_minutes": 20},
    )
    assert service.status_code == 201
    # An admin has no profile of their own.
    assert (await client.get("/providers/me", headers=admin.headers)).status_code == 403


async def test_other_provider_cannot_update_profile(client: httpx.AsyncClient) -> None:
    _, profile = await provider_with_profile(client)
    other, _ = await provider_with_profile(client)
    response = await client.put(
        f"/providers/{profile['id']}", headers=other.headers, json={"bio": "hijacked"}
    )
    assert response.status_code == 403
    assert (await client.get(f"/providers/{profile['id']}")).json()["bio"] is None
