"""Forgot/reset password, with the link delivered by the worker through SMTP."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.notifications.models import OutboxMessage
from slotwise.notifications.worker import Worker
from tests.factories import PASSWORD, Clock, login, signed_in, unique_email
from tests.notifications.conftest import SmtpServer

NEW_PASSWORD = "another-long-and-unusual-passphrase"


async def _mailed_token(smtp: SmtpServer, email: str) -> str:
    (message,) = smtp.inbox.to(email)
    assert message["X-Slotwise-Kind"] == "password_reset"
    text = str(message.get_body(preferencelist=("plain",)).get_content())
    match = re.search(r"/reset-password\?token=([A-Za-z0-9_-]+)", text)
    assert match is not None, text
    return match.group(1)


async def test_forgot_password_answers_the_same_for_unknown_emails(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    account = await signed_in(client)
    known = await client.post("/auth/forgot-password", json={"email": account.email})
    unknown = await client.post("/auth/forgot-password", json={"email": unique_email("nobody")})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    await worker.run_until_idle(now=clock.now)
    assert [str(m["To"]) for m in smtp.inbox.messages] == [account.email]


async def test_reset_sets_the_password_once_and_ends_sessions(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    account = await signed_in(client)
    await client.post("/auth/forgot-password", json={"email": account.email})
    await worker.run_until_idle(now=clock.now)
    token = await _mailed_token(smtp, account.email)
    assert len(token) >= 22  # at least 128 random bits

    body = {"token": token, "new_password": NEW_PASSWORD}
    response = await client.post("/auth/reset-password", json=body)
    assert response.status_code == 204, response.text
    again = await client.post("/auth/reset-password", json=body)
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_reset_token"

    refreshed = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refreshed.status_code == 401
    old = await client.post("/auth/login", data={"username": account.email, "password": PASSWORD})
    assert old.status_code == 401
    new = await client.post(
        "/auth/login", data={"username": account.email, "password": NEW_PASSWORD}
    )
    assert new.status_code == 200


async def test_reset_token_expires_after_an_hour(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    account = await signed_in(client)
    await client.post("/auth/forgot-password", json={"email": account.email})
    await worker.run_until_idle(now=clock.now)
    token = await _mailed_token(smtp, account.email)
    clock.now += timedelta(hours=1)
    response = await client.post(
        "/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 400


async def test_reset_ends_access_tokens_issued_before_it(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    """Refresh tokens are revoked by the reset; access tokens must stop at once too."""
    account = await signed_in(client)
    assert (await client.get("/users/me", headers=account.headers)).status_code == 200
    await client.post("/auth/forgot-password", json={"email": account.email})
    await worker.run_until_idle(now=clock.now)
    token = await _mailed_token(smtp, account.email)
    await asyncio.sleep(1.05)  # `iat` has whole seconds: the cutoff falls after this token's
    reset = await client.post(
        "/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204
    assert (await client.get("/users/me", headers=account.headers)).status_code == 401
    fresh = await login(client, account.email, NEW_PASSWORD)
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert me.status_code == 200


async def test_the_outbox_keeps_no_reset_link_once_it_is_sent(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    """The link holds a token that works for an hour: once mailed, the database keeps only
    its hash (as for a guest's manage link)."""
    account = await signed_in(client)
    await client.post("/auth/forgot-password", json={"email": account.email})
    await worker.run_until_idle(now=clock.now)
    token = await _mailed_token(smtp, account.email)
    async with app.state.slotwise.db.session(writes=False) as session:
        rows = list(
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.recipient_email == account.email)
            )
        )
    assert [(row.kind, row.context) for row in rows] == [("password_reset", {"valid_minutes": 60})]
    assert token not in str(rows[0].context)
