from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.users.models import Role, RoleChange, User


async def get_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_for_update(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user as stored now, its row locked until the transaction ends (PostgreSQL)."""
    query = select(User).where(User.id == user_id).with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.lower()))


async def list_page(
    session: AsyncSession, *, role: Role | None, limit: int, offset: int
) -> tuple[list[User], int]:
    query = select(User)
    if role is not None:
        query = query.where(User.role == role)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(User.created_at, User.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def list_role_changes(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[list[RoleChange], int]:
    query = select(RoleChange).where(RoleChange.user_id == user_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(RoleChange.changed_at, RoleChange.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)
