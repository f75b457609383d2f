"""Use cases of authentication: register, log in, refresh with rotation, log out.

Each receives what it uses: the password hasher, the settings (token lifetimes and keys),
the denylist's Redis (None without one).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import callers, revocation, tokens
from slotwise.auth.models import RefreshToken
from slotwise.auth.passwords import PasswordHasher, check_policy
from slotwise.auth.schemas import TokenPair
from slotwise.auth.tokens import InvalidToken, TokenClaims, TokenType, VerifiedAccessTokens
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.errors import Conflict, Forbidden, Unauthorized
from slotwise.users import repository as users_repo
from slotwise.users.models import User
from slotwise.users.schemas import UserCreate

if TYPE_CHECKING:
    from redis.asyncio import Redis


class EmailTaken(Conflict):
    code = "email_taken"
    message = "An account with this email already exists."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Incorrect email or password."


class AccountDisabled(Forbidden):
    code = "account_disabled"
    message = "This account is deactivated or blocked."


class RefreshTokenReused(InvalidToken):
    code = "refresh_token_reused"
    message = "This refresh token was already used; the session has been revoked."
    # The family's revocation must survive the error response (see db.get_session).
    keep_changes = True


async def register(
    database: Database, hasher: PasswordHasher, *, data: UserCreate, now: datetime
) -> User:
    """A new account, committed. Its password is hashed first, outside the transaction (see
    ``authenticate``); a taken email costs the hash too, so it is not told by the time."""
    check_policy(data.password, email=data.email)
    hashed_password = await hasher.hash(data.password)
    async with database.transaction(writes=True) as session:
        if await users_repo.get_by_email(session, data.email) is not None:
            raise EmailTaken()
        user = User(
            email=data.email,
            full_name=data.full_name,
            role=data.role,
            timezone=data.timezone,
            hashed_password=hashed_password,
            created_at=now,
            updated_at=now,
        )
        session.add(user)
        try:
            await session.flush()
        except IntegrityError as exc:  # a concurrent registration of the same email won
            raise EmailTaken() from exc
    return user


async def authenticate(
    database: Database, hasher: PasswordHasher, *, email: str, password: str
) -> User:
    """The account whose password this is. The password is checked outside any
    transaction: a check takes tens of milliseconds of a thread, and a transaction open
    that long would hold a pooled connection, and on SQLite a writing one the worker's one
    write lock (``db.Database.transaction``), which every other write waits for."""
    async with database.transaction(writes=False) as session:
        user = await users_repo.get_by_email(session, email)
    valid = await hasher.verify(password, user.hashed_password if user else None)
    if user is None or not valid:
        raise InvalidCredentials()
    if not user.is_active or user.is_blocked:
        raise AccountDisabled()
    return user


async def _issue_pair(
    session: AsyncSession, settings: Settings, *, user: User, family_id: uuid.UUID, now: datetime
) -> TokenPair:
    access = tokens.issue(
        settings, user_id=user.id, session_id=family_id, token_type=TokenType.ACCESS, now=now
    )
    refresh = tokens.issue(
        settings, user_id=user.id, session_id=family_id, token_type=TokenType.REFRESH, now=now
    )
    session.add(
        RefreshToken(
            token_hash=tokens.fingerprint(refresh.token),
            family_id=family_id,
            user_id=user.id,
            issued_at=now,
            expires_at=refresh.claims.expires_at,
        )
    )
    await session.flush()
    return TokenPair(
        access_token=access.token,
        refresh_token=refresh.token,
        expires_in=settings.access_token_minutes * 60,
    )


async def login(
    session: AsyncSession, settings: Settings, *, user: User, now: datetime
) -> TokenPair:
    """Start a new session for ``user`` as ``authenticate`` found them: a new refresh-token
    family, unless the account changed meanwhile (its password, or it can no longer sign
    in). The account is read again with its row locked: a password change committed after
    this read waits for the session's commit, and then ends it with the others."""
    current = await users_repo.get_for_update(session, user.id)
    if current is None or current.hashed_password != user.hashed_password:
        raise InvalidCredentials()
    if not current.is_active or current.is_blocked:
        raise AccountDisabled()
    return await _issue_pair(session, settings, user=current, family_id=uuid.uuid4(), now=now)


async def revoke_user_sessions(
    session: AsyncSession, *, user_id: uuid.UUID, now: datetime, keep: uuid.UUID | None = None
) -> None:
    query = update(RefreshToken).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(RefreshToken.family_id != keep)
    await session.execute(query.values(revoked_at=now))


async def end_sessions(
    session: AsyncSession,
    settings: Settings,
    redis: Redis | None,
    family_ids: Iterable[uuid.UUID],
    *,
    now: datetime,
) -> None:
    """End these sessions at once: their refresh tokens are revoked and every access token
    they were given is refused from now on (the denylist, by session)."""
    ids = sorted(set(family_ids))
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id.in_(ids), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await revocation.end_sessions(
        session, redis, ids, access_lifetime=_access_lifetime(settings), now=now
    )


async def end_other_sessions(
    session: AsyncSession,
    settings: Settings,
    redis: Redis | None,
    *,
    user_id: uuid.UUID,
    keep: uuid.UUID | None,
    now: datetime,
) -> None:
    """End every session of the user but ``keep`` (None: every one): refresh tokens
    revoked, and the access tokens of those that may still hold one (a pair issued within
    an access token's lifetime) refused."""
    await revoke_user_sessions(session, user_id=user_id, now=now, keep=keep)
    query = select(RefreshToken.family_id).where(
        RefreshToken.user_id == user_id,
        RefreshToken.issued_at >= now - _access_lifetime(settings),
    )
    if keep is not None:
        query = query.where(RefreshToken.family_id != keep)
    live = await session.scalars(query.distinct())
    await revocation.end_sessions(
        session, redis, live, access_lifetime=_access_lifetime(settings), now=now
    )


def _access_lifetime(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.access_token_minutes)


async def refresh(
    session: AsyncSession,
    settings: Settings,
    redis: Redis | None,
    *,
    refresh_token: str,
    now: datetime,
) -> TokenPair:
    """Rotate: the presented token is spent and a new pair of the same family is issued.

    A token that was already spent is a sign of theft (RFC 9700 §4.14.2): the whole
    session is ended, its refresh tokens and every access token it was given, so neither
    the thief nor the victim can go on with it.
    """
    claims = tokens.decode(settings, refresh_token, expected=TokenType.REFRESH)
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == tokens.fingerprint(refresh_token))
    )
    if row is None or row.revoked_at is not None or row.family_id != claims.session_id:
        raise InvalidToken()
    # Not revoked meanwhile either (a concurrent password change or reuse): a revoked
    # session issues no more tokens.
    spent = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == row.id,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(rotated_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        await end_sessions(session, settings, redis, [row.family_id], now=now)
        raise RefreshTokenReused()
    user = await users_repo.get_by_id(session, row.user_id)
    if (
        user is None
        or not user.is_active
        or user.is_blocked
        or callers.predates_cutoff(user, claims)
    ):
        raise InvalidToken()
    return await _issue_pair(session, settings, user=user, family_id=row.family_id, now=now)


async def logout(
    session: AsyncSession,
    settings: Settings,
    redis: Redis | None,
    *,
    claims: TokenClaims,
    refresh_token: str | None,
    now: datetime,
) -> None:
    """End the session: its refresh tokens and every access token it was given (and those of
    the session of ``refresh_token``, if it is the user's)."""
    ended = {claims.session_id}
    if refresh_token:
        row = await session.scalar(
            select(RefreshToken).where(
                RefreshToken.token_hash == tokens.fingerprint(refresh_token),
                RefreshToken.user_id == claims.user_id,
            )
        )
        if row is not None:
            ended.add(row.family_id)
    await end_sessions(session, settings, redis, ended, now=now)


async def user_for_access_token(
    session: AsyncSession,
    access_tokens: VerifiedAccessTokens,
    redis: Redis | None,
    *,
    token: str,
) -> tuple[User, TokenClaims]:
    claims = access_tokens.claims(token, now=datetime.now(UTC))
    return await callers.user_for_claims(session, redis, claims), claims
