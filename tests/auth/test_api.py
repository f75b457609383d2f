"""Registration, login, refresh rotation, logout and token tampering."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from slotwise.config import Settings
from slotwise.state import wall_clock
from tests.factories import PASSWORD, login, register, signed_in, unique_email


async def test_register_returns_user_without_password(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={
            "email": "Ana@Example.COM",
            "password": PASSWORD,
            "full_name": "Ana",
            "role": "tutor",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ana@example.com"
    assert body["role"] == "provider"
    assert not any("password" in key for key in body)


@pytest.mark.parametrize(
    ("word", "role"),
    [
        ("tutor", "provider"),
        ("therapist", "provider"),
        ("doctor", "provider"),
        ("staff", "provider"),
        ("provider", "provider"),
        ("patient", "client"),
        ("customer", "client"),
        ("user", "client"),
        ("client", "client"),
        ("Doctor", "provider"),
    ],
)
async def test_register_accepts_the_seeds_role_words(
    client: httpx.AsyncClient, word: str, role: str
) -> None:
    user = await register(client, role=word)
    assert user["role"] == role


async def test_register_defaults_to_client(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", json={"email": unique_email(), "password": PASSWORD, "full_name": "C"}
    )
    assert response.status_code == 201
    assert response.json()["role"] == "client"


async def test_email_taken_is_409_case_insensitively(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email=email)
    response = await client.post(
        "/auth/register",
        json={"email": email.upper(), "password": PASSWORD, "full_name": "Again"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"role": "admin"}, "role"),
        ({"role": "wizard"}, "role"),
        ({"is_superuser": True}, "is_superuser"),
        ({"is_active": False}, "is_active"),
        ({"is_blocked": True}, "is_blocked"),
        ({"full_name": ""}, "full_name"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ],
)
async def test_bad_registration_input_is_422(
    client: httpx.AsyncClient, patch: dict[str, object], field: str
) -> None:
    body = {"email": unique_email(), "password": PASSWORD, "full_name": "X", "role": "client"}
    body.update(patch)
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 422
    error = response.json()
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == "validation_error"
    assert any(detail["loc"][-1] == field for detail in error["details"])


@pytest.mark.parametrize("password", ["password123", "PASSWORD123", "12345678"])
async def test_common_or_overlong_passwords_refused(
    client: httpx.AsyncClient, password: str
) -> None:
    response = await client.post(
        "/auth/register", json={"email": unique_email(), "password": password, "full_name": "X"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "weak_password"


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", content=b"email=a", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    body = json.dumps({"email": unique_email(), "password": PASSWORD, "full_name": "x" * 2_000_000})
    response = await client.post(
        "/auth/register", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_oversized_body_without_length_is_the_same_413(client: httpx.AsyncClient) -> None:
    """Streamed without Content-Length, the body is found too large while being read: the
    same status and code as when its length said so."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"full_name": "'
        for _ in range(600):
            yield b"x" * 4096
        yield b'"}'

    response = await client.post(
        "/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_login_form_json_and_seed_path_all_issue_tokens(client: httpx.AsyncClient) -> None:
    email = str((await register(client))["email"])
    form = {"username": email, "password": PASSWORD}
    for response in (
        await client.post("/auth/login", data=form),
        await client.post("/auth/jwt/login", data=form),
        await client.post("/auth/login/json", json={"email": email, "password": PASSWORD}),
    ):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 30 * 60
        me = await client.get(
            "/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert me.json()["email"] == email


async def test_unknown_email_and_wrong_password_answer_alike(client: httpx.AsyncClient) -> None:
    email = str((await register(client))["email"])
    wrong = await client.post("/auth/login", data={"username": email, "password": "nope-nope-nope"})
    unknown = await client.post(
        "/auth/login", data={"username": unique_email(), "password": "nope-nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
    assert strip(wrong) == strip(unknown)
    assert wrong.json()["code"] == "invalid_credentials"


async def test_login_missing_fields_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/login", data={"username": "a@example.com"})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    first = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    second_refresh = first.json()["refresh_token"]
    assert second_refresh != account.refresh_token

    # The spent token comes back: theft assumed, whole family revoked.
    replay = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"
    # ...including the newest, never-used token of that family.
    after = await client.post("/auth/refresh", json={"refresh_token": second_refresh})
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_token"


async def test_reuse_does_not_touch_other_sessions(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    other = await login(client, account.email)
    await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    ok = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert ok.status_code == 200


async def test_access_and_refresh_tokens_are_not_interchangeable(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    as_refresh = await client.post("/auth/refresh", json={"refresh_token": account.access_token})
    assert as_refresh.status_code == 401
    as_access = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {account.refresh_token}"}
    )
    assert as_access.status_code == 401
    assert as_access.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/auth/logout", "/auth/jwt/logout"])
async def test_logout_revokes_access_token_and_refresh_family(
    client: httpx.AsyncClient, path: str
) -> None:
    account = await signed_in(client)
    response = await client.post(path, headers=account.headers)
    assert response.status_code == 204
    me = await client.get("/auth/me", headers=account.headers)
    assert me.status_code == 401
    refresh = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401


async def test_logout_requires_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/logout")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def _forge(settings: Settings, **changes: object) -> str:
    now = datetime.now(UTC)
    payload: dict[str, object] = {
        "sub": "00000000-0000-0000-0000-000000000000",
        "sid": "00000000-0000-0000-0000-000000000000",
        "jti": "x" * 32,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    payload.update(changes)
    return jwt.encode(payload, settings.signing_key(), algorithm="HS256")


async def test_tampered_tokens_are_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    account = await signed_in(client)
    header, payload, signature = account.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims_b64 = lambda c: base64.urlsafe_b64encode(json.dumps(c).encode()).rstrip(b"=").decode()  # noqa: E731
    none_header = claims_b64({"alg": "none", "typ": "JWT"})
    valid_claims = {**claims}
    forged = {
        "alg none": f"{none_header}.{claims_b64(valid_claims)}.",
        "wrong signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "other key": jwt.encode(
            claims, "another-secret-key-of-sufficient-length!", algorithm="HS256"
        ),
        "expired": _forge(settings, sub=account.id, exp=int(datetime.now(UTC).timestamp()) - 10),
        "wrong audience": _forge(settings, sub=account.id, aud="someone-else"),
        "wrong issuer": _forge(settings, sub=account.id, iss="someone-else"),
        "wrong type": _forge(settings, sub=account.id, typ="refresh"),
        "no jti": jwt.encode(
            {k: v for k, v in claims.items() if k != "jti"},
            settings.signing_key(),
            algorithm="HS256",
        ),
        "garbage": "not.a.jwt",
    }
    for name, token in forged.items():
        response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.json()["code"] == "invalid_token", name


async def test_time_claims_out_of_shape_are_invalid_tokens(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Signed with the key, the account's own session: only the time claims are out of shape."""
    account = await signed_in(client)
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    resigned = lambda **changes: _forge(settings, **{**claims, **changes})  # noqa: E731
    as_is = await client.get("/auth/me", headers={"Authorization": f"Bearer {resigned()}"})
    assert as_is.status_code == 200  # the same claims re-signed are a valid token
    out_of_shape = {
        "exp absurd": resigned(exp=10**30),
        "exp infinite": resigned(exp=float("inf")),
        "exp numeric string": resigned(exp=str(claims["exp"])),
        "exp fractional": resigned(exp=claims["exp"] + 0.5),
        "iat numeric string": resigned(iat=str(claims["iat"])),
        "iat before datetime's range": resigned(iat=-(10**30)),
        "nbf numeric string": resigned(nbf=str(claims["iat"])),
        "nbf before datetime's range": resigned(nbf=-(10**30)),
    }
    for name, token in out_of_shape.items():
        response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (name, response.text)
        assert response.json()["code"] == "invalid_token", name


async def test_expired_access_token_refused_with_controlled_clock(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    app.dependency_overrides[wall_clock] = lambda: past
    account = await signed_in(client)
    app.dependency_overrides.clear()
    response = await client.get("/auth/me", headers=account.headers)
    assert response.status_code == 401


async def test_login_is_rate_limited_per_account(client: httpx.AsyncClient) -> None:
    email = str((await register(client))["email"])
    statuses = []
    for _ in range(6):
        r = await client.post("/auth/login", data={"username": email, "password": "wrong-wrong-1"})
        statuses.append(r.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    last = await client.post("/auth/login", data={"username": email, "password": PASSWORD})
    assert last.status_code == 429
    assert int(last.headers["retry-after"]) >= 1
    assert last.json()["code"] == "rate_limited"


@pytest.mark.parametrize("length", [b"\xb2", b"-1", b"12a", b""])
async def test_a_malformed_content_length_is_400_not_500(app: FastAPI, length: bytes) -> None:
    """Called as an ASGI app (a server in front may or may not have refused it first):
    a Content-Length that is not ASCII digits, "²" included, is a 400."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/login/json",
        "raw_path": b"/api/v1/auth/login/json",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", length)],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(
        message.get("body", b"") for message in sent if message["type"] == "http.response.body"
    )
    assert start["status"] == 400, body
    assert json.loads(body)["code"] == "bad_request"
