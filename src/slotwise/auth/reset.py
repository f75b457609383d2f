"""Forgotten passwords: a single-use, hashed, one-hour token mailed through the outbox.

Auth sits below the domains and notifications: it queues its mail through ``ResetMail``,
which the app factory fills with the outbox's ``enqueue_password_reset``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.apikeys import service as api_keys
from slotwise.auth import service, tokens
from slotwise.auth.models import PasswordResetToken
from slotwise.auth.passwords import PasswordHasher, check_policy
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.errors import AppError
from slotwise.users import repository as users_repo
from slotwise.users.models import User

if TYPE_CHECKING:
    from redis.asyncio import Redis


class InvalidResetToken(AppError):
    code = "invalid_reset_token"
    message = "This reset link is invalid, used or expired; ask for a new one."


class ResetMail(Protocol):
    """Queues the mail of a reset link in the caller's transaction (flush, never commit)."""

    async def __call__(
        self,
        session: AsyncSession,
        *,
        email: str,
        name: str,
        timezone: str,
        reset_url: str,
        valid_minutes: int,
        now: datetime,
    ) -> None: ...


async def request_reset(
    session: AsyncSession,
    mail: ResetMail,
    *,
    email: str,
    link_template: str,
    valid_minutes: int,
    now: datetime,
) -> None:
    """Mail a reset link (``link_template`` with its ``{token}`` filled in), working for
    ``valid_minutes``, if the account exists and may sign in; say nothing either way."""
    user = await users_repo.get_by_email(session, email)
    if user is None or not user.is_active or user.is_blocked:
        return
    token = tokens.new_secret_token()  # 256 random bits; only the hash is stored
    session.add(
        PasswordResetToken(
            token_hash=tokens.fingerprint(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(minutes=valid_minutes),
        )
    )
    await mail(
        session,
        email=user.email,
        name=user.full_name,
        timezone=user.timezone or "UTC",
        reset_url=link_template.replace("{token}", token),
        valid_minutes=valid_minutes,
        now=now,
    )


async def reset_password(
    database: Database,
    hasher: PasswordHasher,
    settings: Settings,
    redis: Redis | None,
    *,
    token: str,
    new_password: str,
    now: datetime,
    wall_now: datetime,
) -> None:
    """Spend the token, set the password, end every session of the user.

    The new password is hashed outside any transaction (``service.authenticate`` says why),
    between a read that finds the token good and the transaction that spends it, which
    finds it good again with the account's row and then the token's locked: of two resets
    of one account, one goes first and the other sees what it did.
    Every session of the account ends, access tokens included (the denylist, by session),
    so a session begun with the old password while the new one was hashed ends too; and
    the account's cutoff is set to the wall-clock time (``wall_now``, not the request
    clock), as the tokens are JWTs checked against it.
    """
    fingerprint = tokens.fingerprint(token)
    async with database.transaction(writes=False) as session:
        row = await session.scalar(_by_fingerprint(fingerprint))
        user = await users_repo.get_by_id(session, row.user_id) if row else None
        _check(row, user, now)
    assert user is not None
    check_policy(new_password, email=user.email)
    hashed_password = await hasher.hash(new_password)
    async with database.transaction(writes=True) as session:
        user = await users_repo.get_for_update(session, user.id)
        row = await session.scalar(_by_fingerprint(fingerprint).with_for_update())
        _check(row, user, now)
        assert user is not None
        user.hashed_password = hashed_password
        user.updated_at = now
        # This token and any other outstanding one of the user are spent.
        await session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
            .values(used_at=now)
        )
        await service.end_other_sessions(
            session, settings, redis, user_id=user.id, keep=None, now=now
        )
        # Whoever knew the old password may have made API keys: they end with the sessions.
        await api_keys.revoke_all(session, user_id=user.id, now=wall_now)
        user.tokens_valid_after = wall_now
        await session.flush()


def _by_fingerprint(fingerprint: str) -> Select[PasswordResetToken]:
    return select(PasswordResetToken).where(PasswordResetToken.token_hash == fingerprint)


def _check(row: PasswordResetToken | None, user: User | None, now: datetime) -> None:
    """InvalidResetToken unless the token is the user's, unused and unexpired, and the user
    may still sign in."""
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidResetToken()
    if user is None or user.id != row.user_id or not user.is_active or user.is_blocked:
        raise InvalidResetToken()
