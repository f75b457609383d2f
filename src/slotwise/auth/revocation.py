"""The access-token denylist: in Redis when configured (expiring keys), else in the database.

An entry names a whole session (its ``sid``, the refresh family's id): a session is ended
(logout, refresh-token reuse, a password change) when its refresh tokens are revoked, and
every access token it was given is refused from then on. Entries naming one access token
(its ``jti``), written by logout before it ended whole sessions, are still honoured: the
check asks for both in one query (or one Redis command), so it costs nothing more.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Exists, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth.models import RevokedAccessToken
from slotwise.db import insert_ignoring_duplicates, one_of, padded

if TYPE_CHECKING:
    from redis.asyncio import Redis

_PREFIX = "slotwise:revoked-jti:"
_SESSION_PREFIX = "slotwise:ended-session:"


def session_key(session_id: uuid.UUID) -> str:
    """A session's entry in the database denylist: its UUID's 36 characters (a jti has 32
    hex digits, so the two never meet)."""
    return str(session_id)


async def end_sessions(
    session: AsyncSession,
    redis: Redis | None,
    session_ids: Iterable[uuid.UUID],
    *,
    access_lifetime: timedelta,
    now: datetime,
) -> None:
    """Refuse every access token of these sessions: those issued up to ``now`` expire within
    ``access_lifetime``, and the sessions' refresh tokens, revoked by the caller in the same
    transaction, issue no more."""
    ids = sorted(set(session_ids))
    if not ids:
        return
    expires_at = now + access_lifetime
    if redis is not None:
        ttl = math.ceil(access_lifetime.total_seconds())
        async with redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.set(_SESSION_PREFIX + str(session_id), "1", ex=ttl)
            await pipe.execute()
        return
    rows = [{"jti": session_key(session_id), "expires_at": expires_at} for session_id in ids]
    await session.execute(insert_ignoring_duplicates(session, RevokedAccessToken), rows)
    await session.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at < now))


def listed(jti: object, sid: object) -> Exists:
    """The token ``jti``, or its session ``sid`` (values or bound parameters), is on the
    database denylist: a clause, to ask in the query that loads the user."""
    return exists().where(_either(jti, sid))


def _either(jti: object, sid: object) -> ColumnElement[bool]:
    return RevokedAccessToken.jti.in_([jti, sid])


def listed_among(*, postgresql: bool) -> Exists:
    """Is any of the entries bound as ``jtis`` (a list) on the database denylist?"""
    return exists().where(one_of(RevokedAccessToken.jti, "jtis", postgresql=postgresql))


async def is_revoked(
    session: AsyncSession, redis: Redis | None, *, jti: str, session_id: uuid.UUID
) -> bool:
    """Is the token, or its whole session, on the denylist?"""
    if redis is not None:
        return bool(await redis.exists(_PREFIX + jti, _SESSION_PREFIX + str(session_id)))
    found = await session.scalar(
        select(RevokedAccessToken.jti).where(_either(jti, session_key(session_id))).limit(1)
    )
    return found is not None


async def revoked_among(
    session: AsyncSession, redis: Redis | None, jtis: list[str], session_ids: list[uuid.UUID]
) -> set[str]:
    """Which of these tokens (by jti) and sessions (by ``session_key``) are on the denylist:
    one round trip however many."""
    if not jtis and not session_ids:
        return set()
    sids = sorted({session_key(session_id) for session_id in session_ids})
    if redis is not None:
        keys = [_PREFIX + jti for jti in jtis] + [_SESSION_PREFIX + sid for sid in sids]
        found = await redis.mget(keys)
        entries = jtis + sids
        return {entry for entry, value in zip(entries, found, strict=True) if value is not None}
    connection = await session.connection()
    postgresql = connection.dialect.name == "postgresql"
    rows = await connection.execute(_LISTED_AMONG[postgresql], {"jtis": padded(jtis + sids)})
    return set(rows.scalars())


_LISTED_AMONG = {
    postgresql: select(RevokedAccessToken.jti).where(
        one_of(RevokedAccessToken.jti, "jtis", postgresql=postgresql)
    )
    for postgresql in (False, True)
}
