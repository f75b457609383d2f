"""A password is hashed or checked outside any transaction (sign-up, login, reset): on SQLite
a writing transaction holds the worker's one write lock, and a hash (tens of milliseconds,
here most of a second) held inside it kept every other write of the worker waiting; on
PostgreSQL it held a pooled connection. And what is written after the hash is for the
account, and the reset token, as they still are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from slotwise.auth import service, tokens
from slotwise.auth.models import PasswordResetToken, RefreshToken
from slotwise.main import create_app
from slotwise.users import repository as users_repo
from slotwise.users.models import User
from tests.conftest import make_settings
from tests.factories import PASSWORD, count_rows, register, unique_email


@pytest.fixture
async def slow_app(database_url: str) -> AsyncIterator[FastAPI]:
    """Argon2 at 64 MiB and 8 passes: most of a second a hash on this machine."""
    settings = make_settings(database_url, argon2_time_cost=8, argon2_memory_kib=65536)
    application = create_app(settings)
    yield application
    await application.state.slotwise.aclose()


async def test_a_write_is_answered_while_a_login_and_a_sign_up_hash(slow_app: FastAPI) -> None:
    """On SQLite this waited for both hashes before; PostgreSQL has no write lock to wait on."""
    transport = httpx.ASGITransport(app=slow_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as client:
        email = str((await register(client))["email"])
        form = {"username": email, "password": PASSWORD}
        logging_in = asyncio.create_task(client.post("/auth/login", data=form))
        signing_up = asyncio.create_task(register(client))
        await asyncio.sleep(0.25)  # both are hashing in their threads by now

        # A write of its own (a reset link's token and mail): it needs the write lock.
        asked = await client.post("/auth/forgot-password", json={"email": email})

        assert asked.status_code == 202, asked.text
        assert not logging_in.done(), "the write waited for the login's password check"
        assert not signing_up.done(), "the write waited for the sign-up's hash"
        assert (await logging_in).status_code == 200
        await signing_up


async def _reset_token(app: FastAPI, email: str) -> str:
    """A reset token of the account's, as a forgotten-password request stores one."""
    token = tokens.new_secret_token()
    async with app.state.slotwise.db.transaction(writes=True) as session:
        user = await users_repo.get_by_email(session, email)
        assert user is not None
        now = datetime.now(UTC)
        session.add(
            PasswordResetToken(
                token_hash=tokens.fingerprint(token),
                user_id=user.id,
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    return token


async def test_a_write_is_answered_while_a_reset_hashes(slow_app: FastAPI) -> None:
    """On SQLite this waited for the reset's hash before."""
    transport = httpx.ASGITransport(app=slow_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as client:
        email = str((await register(client))["email"])
        token = await _reset_token(slow_app, email)
        body = {"token": token, "new_password": "a-new-and-unusual-passphrase"}
        resetting = asyncio.create_task(client.post("/auth/reset-password", json=body))
        await asyncio.sleep(0.25)

        asked = await client.post("/auth/forgot-password", json={"email": email})

        assert asked.status_code == 202, asked.text
        assert not resetting.done(), "the write waited for the reset's hash"
        assert (await resetting).status_code == 204


async def test_of_two_resets_with_one_token_one_wins(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    email = str((await register(client))["email"])
    token = await _reset_token(app, email)
    passwords = ["the-first-new-passphrase", "the-second-new-passphrase"]

    answers = await asyncio.gather(
        *(
            client.post("/auth/reset-password", json={"token": token, "new_password": password})
            for password in passwords
        )
    )

    assert sorted(answer.status_code for answer in answers) == [204, 400]
    (won,) = [p for p, a in zip(passwords, answers, strict=True) if a.status_code == 204]
    (lost,) = [p for p, a in zip(passwords, answers, strict=True) if a.status_code == 400]
    form = {"username": email}
    assert (await client.post("/auth/login", data=form | {"password": won})).status_code == 200
    assert (await client.post("/auth/login", data=form | {"password": lost})).status_code == 401


async def _checked(app: FastAPI, email: str) -> User:
    shared = app.state.slotwise
    return await service.authenticate(shared.db, shared.hasher, email=email, password=PASSWORD)


async def _log_in(app: FastAPI, user: User) -> None:
    shared = app.state.slotwise
    async with shared.db.transaction(writes=True) as session:
        await service.login(session, shared.settings, user=user, now=datetime.now(UTC))


async def _change(app: FastAPI, user: User, **values: object) -> None:
    async with app.state.slotwise.db.transaction(writes=True) as session:
        await session.execute(update(User).where(User.id == user.id).values(**values))


async def test_a_password_changed_after_the_check_starts_no_session(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    email = str((await register(client, email=unique_email()))["email"])
    user = await _checked(app, email)
    new_hash = await app.state.slotwise.hasher.hash("another-password-42")
    await _change(app, user, hashed_password=new_hash)

    with pytest.raises(service.InvalidCredentials):
        await _log_in(app, user)
    assert await count_rows(app, RefreshToken, user_id=user.id) == 0


async def test_an_account_blocked_after_the_check_starts_no_session(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    email = str((await register(client))["email"])
    user = await _checked(app, email)
    await _change(app, user, is_blocked=True)

    with pytest.raises(service.AccountDisabled):
        await _log_in(app, user)
    assert await count_rows(app, RefreshToken, user_id=user.id) == 0


async def test_an_unchanged_account_starts_its_session(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    email = str((await register(client))["email"])
    user = await _checked(app, email)

    await _log_in(app, user)
    assert await count_rows(app, RefreshToken, user_id=user.id) == 1
