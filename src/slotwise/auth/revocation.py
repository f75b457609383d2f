"""The access-token denylist: in Redis when configured (expiring keys), else in the database."""

from __future__ import annotations

import math
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy import Exists, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth.models import RevokedAccessToken
from slotwise.db import one_of, padded

_PREFIX = "slotwise:revoked-jti:"


async def revoke(
    session: AsyncSession, redis: Redis | None, *, jti: str, expires_at: datetime, now: datetime
) -> None:
    if expires_at <= now:
        return
    if redis is not None:
        ttl = math.ceil((expires_at - now).total_seconds())
        await redis.set(_PREFIX + jti, "1", ex=ttl)
        return
    if await session.get(RevokedAccessToken, jti) is None:
        session.add(RevokedAccessToken(jti=jti, expires_at=expires_at))
        # Expired entries are no longer needed: the token's own `exp` refuses it.
        await session.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at < now))


def listed(jti: object) -> Exists:
    """`jti` (a value or a bound parameter) is on the database denylist: a clause, to ask in
    the query that loads the user."""
    return exists().where(RevokedAccessToken.jti == jti)


def listed_among(*, postgresql: bool) -> Exists:
    """Is any of the tokens bound as ``jtis`` (a list) on the database denylist?"""
    return exists().where(one_of(RevokedAccessToken.jti, "jtis", postgresql=postgresql))


async def is_revoked(session: AsyncSession, redis: Redis | None, *, jti: str) -> bool:
    if redis is not None:
        return bool(await redis.exists(_PREFIX + jti))
    found = await session.scalar(
        select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == jti)
    )
    return found is not None


async def revoked_among(session: AsyncSession, redis: Redis | None, jtis: list[str]) -> set[str]:
    """Which of these tokens are on the denylist: one round trip however many."""
    if not jtis:
        return set()
    if redis is not None:
        found = await redis.mget([_PREFIX + jti for jti in jtis])
        return {jti for jti, value in zip(jtis, found, strict=True) if value is not None}
    connection = await session.connection()
    postgresql = connection.dialect.name == "postgresql"
    rows = await connection.execute(_LISTED_AMONG[postgresql], {"jtis": padded(jtis)})
    return set(rows.scalars())


_LISTED_AMONG = {
    postgresql: select(RevokedAccessToken.jti).where(
        one_of(RevokedAccessToken.jti, "jtis", postgresql=postgresql)
    )
    for postgresql in (False, True)
}
