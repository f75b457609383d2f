"""Self-service account updates and admin-only user management."""

from __future__ import annotations

import httpx
import pytest

from slotwise.config import Settings
from tests.factories import PASSWORD, login, signed_in, signed_in_admin


async def test_users_me_reads_and_updates_profile(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    me = await client.get("/users/me", headers=account.headers)
    assert me.status_code == 200
    assert me.json()["email"] == account.email
    response = await client.patch(
        "/users/me",
        headers=account.headers,
        json={"full_name": "New Name", "timezone": "Europe/Madrid"},
    )
    assert response.status_code == 200
    assert response.json()["full_name"] == "New Name"
    assert response.json()["timezone"] == "Europe/Madrid"


@pytest.mark.parametrize(
    "privileged",
    [
        {"role": "admin"},
        {"is_active": False},
        {"is_blocked": False},
        {"email": "x@example.com"},
        {"is_superuser": True},
        {"email_verified": True},
    ],
)
async def test_users_me_refuses_privileged_fields(
    client: httpx.AsyncClient, privileged: dict[str, object]
) -> None:
    account = await signed_in(client)
    response = await client.patch("/users/me", headers=account.headers, json=privileged)
    assert response.status_code == 422
    me = await client.get("/users/me", headers=account.headers)
    assert me.json()["role"] == "client"


async def test_users_me_invalid_timezone_is_422(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    response = await client.patch(
        "/users/me", headers=account.headers, json={"timezone": "Nope/Nope"}
    )
    assert response.status_code == 422


async def test_password_change_needs_the_current_password(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    new = "another-long-passphrase-42"
    missing = await client.patch("/users/me", headers=account.headers, json={"new_password": new})
    assert missing.status_code == 422
    assert missing.json()["code"] == "current_password_required"
    wrong = await client.patch(
        "/users/me",
        headers=account.headers,
        json={"current_password": "wrong-wrong-wrong", "new_password": new},
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "current_password_incorrect"
    weak = await client.patch(
        "/users/me",
        headers=account.headers,
        json={"current_password": PASSWORD, "new_password": "password123"},
    )
    assert weak.status_code == 422
    assert weak.json()["code"] == "weak_password"


async def test_password_change_signs_out_other_sessions(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    other = await login(client, account.email)
    new = "another-long-passphrase-42"
    response = await client.patch(
        "/users/me",
        headers=account.headers,
        json={"current_password": PASSWORD, "new_password": new},
    )
    assert response.status_code == 200
    gone = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert gone.status_code == 401
    kept = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert kept.status_code == 200
    old = await client.post("/auth/login", data={"username": account.email, "password": PASSWORD})
    assert old.status_code == 401
    await login(client, account.email, new)


async def test_admin_routes_are_forbidden_to_others(client: httpx.AsyncClient) -> None:
    client_a = await signed_in(client)
    client_b = await signed_in(client)
    provider = await signed_in(client, "provider")
    for account in (client_a, provider):
        assert (await client.get("/users/", headers=account.headers)).status_code == 403
        other = await client.get(f"/users/{client_b.id}", headers=account.headers)
        assert other.status_code in (403, 404)
        assert "email" not in other.json()
        patch = await client.patch(
            f"/users/{account.id}", headers=account.headers, json={"role": "admin"}
        )
        assert patch.status_code == 403
    assert (await client.get("/users/")).status_code == 401


async def test_admin_lists_filters_and_reads_users(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await signed_in_admin(client, settings)
    for role in ("client", "client", "provider"):
        await signed_in(client, role)
    page = await client.get("/users/", headers=admin.headers, params={"limit": 2})
    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 4
    assert len(body["items"]) == 2
    assert body["limit"] == 2
    providers = await client.get("/users/", headers=admin.headers, params={"role": "provider"})
    assert [u["role"] for u in providers.json()["items"]] == ["provider"]
    one = body["items"][1]
    read = await client.get(f"/users/{one['id']}", headers=admin.headers)
    assert read.json() == one
    missing = await client.get("/users/00000000-0000-0000-0000-000000000000", headers=admin.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "user_not_found"
    bad = await client.get("/users/not-a-uuid", headers=admin.headers)
    assert bad.status_code == 422
    too_big = await client.get("/users/", headers=admin.headers, params={"limit": 1000})
    assert too_big.status_code == 422


async def test_admin_changes_role_and_deactivation_stops_tokens_at_once(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await signed_in_admin(client, settings)
    target = await signed_in(client)
    promoted = await client.patch(
        f"/users/{target.id}", headers=admin.headers, json={"role": "provider"}
    )
    assert promoted.json()["role"] == "provider"
    deactivated = await client.patch(
        f"/users/{target.id}", headers=admin.headers, json={"is_active": False}
    )
    assert deactivated.status_code == 200
    assert (await client.get("/users/me", headers=target.headers)).status_code == 401
    refresh = await client.post("/auth/refresh", json={"refresh_token": target.refresh_token})
    assert refresh.status_code == 401
    relogin = await client.post(
        "/auth/login", data={"username": target.email, "password": PASSWORD}
    )
    assert relogin.status_code == 403
    assert relogin.json()["code"] == "account_disabled"


async def test_blocking_stops_tokens_and_unblocking_restores_login(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await signed_in_admin(client, settings)
    target = await signed_in(client)
    await client.patch(f"/users/{target.id}", headers=admin.headers, json={"is_blocked": True})
    assert (await client.get("/users/me", headers=target.headers)).status_code == 401
    await client.patch(f"/users/{target.id}", headers=admin.headers, json={"is_blocked": False})
    await login(client, target.email)


async def test_admin_cannot_lock_themselves_out(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await signed_in_admin(client, settings)
    for change in ({"role": "client"}, {"is_active": False}, {"is_blocked": True}):
        response = await client.patch(f"/users/{admin.id}", headers=admin.headers, json=change)
        assert response.status_code == 409
        assert response.json()["code"] == "cannot_modify_self"


async def test_admin_update_refuses_unknown_fields(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await signed_in_admin(client, settings)
    target = await signed_in(client)
    response = await client.patch(
        f"/users/{target.id}", headers=admin.headers, json={"hashed_password": "x"}
    )
    assert response.status_code == 422
