"""A password is hashed or checked outside any transaction (sign-up, login, reset): on SQLite
a writing transaction holds the worker's one write lock, and a hash (tens of milliseconds)
held inside it kept every other write of the worker waiting; on PostgreSQL it held a pooled
connection. The hasher is held at a gate here, so that "meanwhile" is certain. And what is
written after the hash is for the account, and the reset token, as they are then."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from slotwise.auth import service, tokens
from slotwise.auth.models import PasswordResetToken, RefreshToken
from slotwise.users import repository as users_repo
from slotwise.users.models import User
from tests.factories import PASSWORD, Account, count_rows, register, signed_in


class _Gate:
    """Holds every call of the app's hasher's ``method`` (``hash`` or ``verify``) until
    ``opened`` is set; ``entered`` is set once one waits there."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, app: FastAPI, method: str) -> None:
        hasher = app.state.slotwise.hasher
        real = getattr(hasher, method)
        self.entered, self.opened = asyncio.Event(), asyncio.Event()

        async def held(*args: Any) -> Any:
            self.entered.set()
            await self.opened.wait()
            return await real(*args)

        monkeypatch.setattr(hasher, method, held)


async def _write_while_held(
    client: httpx.AsyncClient, gate: _Gate, started: asyncio.Task[Any], email: str
) -> Any:
    """A write of its own (a reset link's token and mail) while ``started`` waits at the
    gate: it must be answered (within 10 s; before, on SQLite, it waited for the gate
    forever). Then the gate opens and ``started``'s result comes back."""
    await asyncio.wait_for(gate.entered.wait(), 10)
    try:
        asked = await asyncio.wait_for(
            client.post("/auth/forgot-password", json={"email": email}), 10
        )
    finally:
        gate.opened.set()
    assert asked.status_code == 202, asked.text
    return await started


async def test_a_write_is_answered_while_a_login_checks_its_password(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = str((await register(client))["email"])
    gate = _Gate(monkeypatch, app, "verify")
    form = {"username": email, "password": PASSWORD}
    logging_in = asyncio.create_task(client.post("/auth/login", data=form))

    answer = await _write_while_held(client, gate, logging_in, email)
    assert answer.status_code == 200, answer.text


async def test_a_write_is_answered_while_a_sign_up_hashes(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = str((await register(client))["email"])
    gate = _Gate(monkeypatch, app, "hash")
    signing_up = asyncio.create_task(register(client))

    account = await _write_while_held(client, gate, signing_up, email)
    assert account["email"] != email


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


async def _resetting(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, _Gate, asyncio.Task[httpx.Response]]:
    """An account's email, and its password reset under way, the new one's hash held at
    the gate."""
    email = str((await register(client))["email"])
    token = await _reset_token(app, email)
    gate = _Gate(monkeypatch, app, "hash")
    body = {"token": token, "new_password": "a-new-and-unusual-passphrase"}
    resetting = asyncio.create_task(client.post("/auth/reset-password", json=body))
    return email, gate, resetting


async def test_a_write_is_answered_while_a_reset_hashes(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    email, gate, resetting = await _resetting(app, client, monkeypatch)

    answer = await _write_while_held(client, gate, resetting, email)
    assert answer.status_code == 204, answer.text


async def test_a_session_begun_while_a_reset_hashes_ends_with_the_reset(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    email, gate, resetting = await _resetting(app, client, monkeypatch)
    await asyncio.wait_for(gate.entered.wait(), 10)
    # The old password still opens a session while the new one is hashed...
    form = {"username": email, "password": PASSWORD}
    try:
        login = await asyncio.wait_for(client.post("/auth/login", data=form), 10)
    finally:
        gate.opened.set()
    assert login.status_code == 200, login.text
    assert (await resetting).status_code == 204

    # ...and the reset ends it, its access token too (the same second as the reset's cutoff
    # or not).
    pair = login.json()
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 401
    refreshed = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401


async def _changing_password(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> tuple[Account, _Gate, asyncio.Task[httpx.Response]]:
    """A signed-in account changing its password, the new one's hash held at the gate."""
    account = await signed_in(client)
    gate = _Gate(monkeypatch, app, "hash")
    change = {"current_password": PASSWORD, "new_password": "a-new-and-unusual-passphrase"}
    changing = asyncio.create_task(client.patch("/users/me", json=change, headers=account.headers))
    return account, gate, changing


async def test_a_write_is_answered_while_a_password_change_hashes(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    account, gate, changing = await _changing_password(app, client, monkeypatch)

    answer = await _write_while_held(client, gate, changing, account.email)
    assert answer.status_code == 200, answer.text


async def test_a_password_changed_while_another_change_hashes_refuses_that_change(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    account, gate, changing = await _changing_password(app, client, monkeypatch)
    await asyncio.wait_for(gate.entered.wait(), 10)
    user = await _checked(app, account.email)
    monkeypatch.undo()  # the hasher as it is, for the change made meanwhile
    other = await app.state.slotwise.hasher.hash("x-y-z-w-1")
    try:
        await asyncio.wait_for(_change(app, user, hashed_password=other), 10)
    finally:
        gate.opened.set()

    answer = await changing
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "current_password_incorrect"


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


@pytest.mark.parametrize(
    ("changed", "refusal"),
    [("password", service.InvalidCredentials), ("blocked", service.AccountDisabled)],
)
async def test_an_account_changed_after_the_check_starts_no_session(
    app: FastAPI, client: httpx.AsyncClient, changed: str, refusal: type[Exception]
) -> None:
    email = str((await register(client))["email"])
    user = await _checked(app, email)
    if changed == "password":
        await _change(app, user, hashed_password=await app.state.slotwise.hasher.hash("x-y-z-1"))
    else:
        await _change(app, user, is_blocked=True)

    with pytest.raises(refusal):
        await _log_in(app, user)
    assert await count_rows(app, RefreshToken, user_id=user.id) == 0


async def test_an_unchanged_account_starts_its_session(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    email = str((await register(client))["email"])
    user = await _checked(app, email)

    await _log_in(app, user)
    assert await count_rows(app, RefreshToken, user_id=user.id) == 1
