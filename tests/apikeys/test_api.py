"""/api-keys: made by providers and admins, shown once, kept as a hash, listed, revoked;
a key works until it is revoked or expires, within its own rate limit."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from slotwise.apikeys.models import ApiKey
from slotwise.auth.models import PasswordResetToken
from slotwise.auth.tokens import fingerprint
from slotwise.config import Settings
from slotwise.main import create_app
from tests.conftest import make_settings
from tests.factories import api_key, signed_in, signed_in_admin


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _row(app: FastAPI, key_id: str) -> ApiKey:
    async with app.state.slotwise.db.session(writes=False) as session:
        row = await session.get(ApiKey, uuid.UUID(key_id))
        assert row is not None
        return row


async def test_a_key_is_shown_once_and_kept_only_as_its_hash(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    provider = await signed_in(client, "provider")
    created = await client.post(
        "/api-keys",
        headers=provider.headers,
        json={"name": "Booking page", "scopes": ["book", "read", "book"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("sw_live_")
    assert len(key) >= len("sw_live_") + 43  # 256 random bits
    assert body["prefix"] == key[:12]
    assert body["scopes"] == ["book", "read"]
    assert body["user_id"] == provider.id
    assert body["expires_at"] is None
    assert body["last_used_at"] is None
    assert body["revoked_at"] is None
    assert body["created_at"].endswith("Z") or "+" in body["created_at"]

    one = await client.get(f"/api-keys/{body['id']}", headers=provider.headers)
    listed = await client.get("/api-keys", headers=provider.headers)
    assert "key" not in one.json()
    assert key not in one.text
    assert key not in listed.text
    assert [item["id"] for item in listed.json()["items"]] == [body["id"]]

    row = await _row(app, body["id"])
    assert row.token_hash == hashlib.sha256(key.encode()).hexdigest() == fingerprint(key)
    stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert not any(key in value for value in stored)
    assert not any(key[len("sw_live_") :][:20] in value for value in stored)

    # The key works as its owner.
    me = await client.get("/auth/me", headers=_bearer(key))
    assert me.status_code == 200
    assert me.json()["id"] == provider.id


async def test_providers_and_admins_make_keys_clients_do_not(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = {"name": "k", "scopes": ["read"]}
    customer = await signed_in(client)
    refused = await client.post("/api-keys", headers=customer.headers, json=body)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    anonymous = await client.post("/api-keys", json=body)
    assert anonymous.status_code == 401
    admin = await signed_in_admin(client, settings)
    assert (await client.post("/api-keys", headers=admin.headers, json=body)).status_code == 201


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "k", "scopes": []}, "validation_error"),
        ({"name": "k", "scopes": ["admin"]}, "validation_error"),
        ({"name": "", "scopes": ["read"]}, "validation_error"),
        (
            {"name": "k", "scopes": ["read"], "expires_at": "2030-01-01T00:00:00"},
            "validation_error",
        ),
        ({"name": "k", "scopes": ["read"], "user_id": str(uuid.uuid4())}, "validation_error"),
        ({"name": "k", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z"}, "expiry_in_past"),
    ],
)
async def test_bad_requests_are_refused(
    client: httpx.AsyncClient, body: dict[str, object], code: str
) -> None:
    provider = await signed_in(client, "provider")
    response = await client.post("/api-keys", headers=provider.headers, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


async def test_each_sees_their_own_keys_an_admin_everyones(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    provider_a = await signed_in(client, "provider")
    provider_b = await signed_in(client, "provider")
    admin = await signed_in_admin(client, settings)
    ids_a = []
    for name in ("first", "second"):
        made = await client.post(
            "/api-keys", headers=provider_a.headers, json={"name": name, "scopes": ["read"]}
        )
        ids_a.append(made.json()["id"])
    made_b = await client.post(
        "/api-keys", headers=provider_b.headers, json={"name": "b", "scopes": ["read"]}
    )
    id_b = made_b.json()["id"]

    own = await client.get("/api-keys", headers=provider_a.headers)
    assert [k["id"] for k in own.json()["items"]] == ids_a[::-1]  # newest first
    assert own.json()["total"] == 2
    foreign = await client.get(
        "/api-keys", headers=provider_a.headers, params={"user_id": provider_b.id}
    )
    assert foreign.json()["total"] == 0
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"/api-keys/{id_b}", headers=provider_a.headers)
        assert response.status_code == 404, method
        assert response.json()["code"] == "api_key_not_found"
    assert (await client.get(f"/api-keys/{uuid.uuid4()}", headers=admin.headers)).status_code == 404

    everyone = await client.get("/api-keys", headers=admin.headers)
    assert {k["id"] for k in everyone.json()["items"]} == {*ids_a, id_b}
    only_b = await client.get("/api-keys", headers=admin.headers, params={"user_id": provider_b.id})
    assert [k["id"] for k in only_b.json()["items"]] == [id_b]
    # An admin reads and revokes anyone's key.
    assert (await client.get(f"/api-keys/{id_b}", headers=admin.headers)).status_code == 200
    assert (await client.delete(f"/api-keys/{id_b}", headers=admin.headers)).status_code == 204
    revoked = await client.get(f"/api-keys/{id_b}", headers=provider_b.headers)
    assert revoked.json()["revoked_at"] is not None


async def test_a_revoked_key_is_refused_as_a_bad_token(client: httpx.AsyncClient) -> None:
    provider = await signed_in(client, "provider")
    made = await client.post(
        "/api-keys", headers=provider.headers, json={"name": "k", "scopes": ["read"]}
    )
    key, key_id = made.json()["key"], made.json()["id"]
    assert (await client.get("/auth/me", headers=_bearer(key))).status_code == 200

    assert (await client.delete(f"/api-keys/{key_id}", headers=provider.headers)).status_code == 204
    refused = await client.get("/auth/me", headers=_bearer(key))
    bad_token = await client.get("/auth/me", headers=_bearer("not-a-token"))
    unknown_key = await client.get("/auth/me", headers=_bearer("sw_live_" + "A" * 43))
    for response in (refused, bad_token, unknown_key):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    shape = {k: v for k, v in bad_token.json().items() if k != "request_id"}
    for response in (refused, unknown_key):
        assert {k: v for k, v in response.json().items() if k != "request_id"} == shape
    assert shape["code"] == "invalid_token"

    # Revoking again changes nothing.
    first = (await client.get(f"/api-keys/{key_id}", headers=provider.headers)).json()
    assert (await client.delete(f"/api-keys/{key_id}", headers=provider.headers)).status_code == 204
    again = (await client.get(f"/api-keys/{key_id}", headers=provider.headers)).json()
    assert again["revoked_at"] == first["revoked_at"] is not None


async def test_an_expired_key_is_refused(client: httpx.AsyncClient) -> None:
    provider = await signed_in(client, "provider")
    expires_at = datetime.now(UTC) + timedelta(seconds=2)
    made = await client.post(
        "/api-keys",
        headers=provider.headers,
        json={"name": "k", "scopes": ["read"], "expires_at": expires_at.isoformat()},
    )
    assert made.status_code == 201, made.text
    assert datetime.fromisoformat(made.json()["expires_at"]) == expires_at
    key = made.json()["key"]
    assert (await client.get("/auth/me", headers=_bearer(key))).status_code == 200
    await asyncio.sleep((expires_at - datetime.now(UTC)).total_seconds() + 0.05)
    expired = await client.get("/auth/me", headers=_bearer(key))
    assert expired.status_code == 401
    assert expired.json()["code"] == "invalid_token"


async def test_a_key_stops_with_its_owners_account(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    provider = await signed_in(client, "provider")
    headers = await api_key(client, provider, "read")
    admin = await signed_in_admin(client, settings)
    blocked = await client.patch(
        f"/users/{provider.id}", headers=admin.headers, json={"is_blocked": True}
    )
    assert blocked.status_code == 200
    assert (await client.get("/auth/me", headers=headers)).status_code == 401
    await client.patch(f"/users/{provider.id}", headers=admin.headers, json={"is_blocked": False})
    assert (await client.get("/auth/me", headers=headers)).status_code == 200


async def test_a_password_reset_revokes_the_accounts_keys(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    provider = await signed_in(client, "provider")
    other = await signed_in(client, "provider")
    headers = await api_key(client, provider, "read")
    others_headers = await api_key(client, other, "read")
    token = "a-reset-token-of-the-test-" + uuid.uuid4().hex
    async with app.state.slotwise.db.transaction(writes=True) as session:
        session.add(
            PasswordResetToken(
                token_hash=fingerprint(token),
                user_id=uuid.UUID(provider.id),
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
    reset = await client.post(
        "/auth/reset-password",
        json={"token": token, "new_password": "a-brand-new-long-passphrase"},
    )
    assert reset.status_code == 204, reset.text
    assert (await client.get("/auth/me", headers=headers)).status_code == 401
    assert (await client.get("/auth/me", headers=others_headers)).status_code == 200
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = (await session.scalars(select(ApiKey))).all()
    revoked = {str(row.user_id): row.revoked_at is not None for row in rows}
    assert revoked == {provider.id: True, other.id: False}


async def test_the_last_use_is_recorded_at_most_once_a_minute(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    provider = await signed_in(client, "provider")
    made = await client.post(
        "/api-keys", headers=provider.headers, json={"name": "k", "scopes": ["read"]}
    )
    key, key_id = made.json()["key"], made.json()["id"]
    uses = app.state.slotwise.api_key_uses
    before = datetime.now(UTC)
    assert (await client.get("/auth/me", headers=_bearer(key))).status_code == 200
    await uses.settle()
    first = (await _row(app, key_id)).last_used_at
    assert first is not None
    assert before <= first <= datetime.now(UTC)
    shown = await client.get(f"/api-keys/{key_id}", headers=provider.headers)
    assert datetime.fromisoformat(shown.json()["last_used_at"]) == first

    for _ in range(3):  # within the minute: nothing more is written
        assert (await client.get("/auth/me", headers=_bearer(key))).status_code == 200
    await uses.settle()
    assert (await _row(app, key_id)).last_used_at == first

    # A minute on (this worker's memory of the write and the row both older), it is again.
    earlier = first - timedelta(minutes=2)
    async with app.state.slotwise.db.transaction(writes=True) as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == uuid.UUID(key_id)).values(last_used_at=earlier)
        )
    uses._recorded[uuid.UUID(key_id)] = earlier
    assert (await client.get("/auth/me", headers=_bearer(key))).status_code == 200
    await uses.settle()
    later = (await _row(app, key_id)).last_used_at
    assert later is not None
    assert later > first


async def test_each_key_has_its_own_rate_limit(database_url: str) -> None:
    app = create_app(make_settings(database_url, rate_limit_api_key="3/minute"))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
            provider = await signed_in(client, "provider")
            first = await api_key(client, provider, "read")
            second = await api_key(client, provider, "read")
            statuses = [(await client.get("/auth/me", headers=first)).status_code for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            limited = await client.get("/auth/me", headers=first)
            assert limited.status_code == 429
            assert limited.json()["code"] == "rate_limited"
            assert 1 <= int(limited.headers["retry-after"]) <= 60
            # Another key of the same owner, and the owner's session, are not limited by it.
            assert (await client.get("/auth/me", headers=second)).status_code == 200
            assert (await client.get("/auth/me", headers=provider.headers)).status_code == 200
    finally:
        await app.state.slotwise.aclose()
