"""Small queries on API keys: no rules, no commits."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Row, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.apikeys.models import ApiKey
from slotwise.users.models import User

# Built once: every request made with a key runs it.
_KEY_AND_OWNER = (
    select(ApiKey, User)
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.token_hash == bindparam("token_hash"))
)


async def key_and_owner(session: AsyncSession, *, token_hash: str) -> Row[ApiKey, User] | None:
    """The key of this fingerprint and its owner's account, in one query."""
    found: Row[ApiKey, User] | None = (
        await session.execute(_KEY_AND_OWNER, {"token_hash": token_hash})
    ).first()
    return found


async def get(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def page(
    session: AsyncSession, *, user_id: uuid.UUID | None, limit: int, offset: int
) -> tuple[list[ApiKey], int]:
    """Keys, newest first: one account's, or (``user_id`` None) everyone's."""
    query = select(ApiKey)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(ApiKey.created_at.desc(), ApiKey.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def revoke_all(session: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def record_use(session: AsyncSession, *, key_id: uuid.UUID, now: datetime) -> None:
    """Set the key's last use to ``now``, unless a later one is already recorded."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now),
        )
        .values(last_used_at=now)
    )
