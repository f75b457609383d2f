from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.providers.models import Provider, Service
from slotwise.users.models import Role, User


def _as_uuid(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


def by_ref(ref: str) -> Select[Provider]:
    """By public handle, provider id, or the provider's user id (seed 003's staff_id)."""
    as_id = _as_uuid(ref)
    if as_id is None:
        return select(Provider).where(Provider.public_handle == ref.lower())
    return select(Provider).where(or_(Provider.id == as_id, Provider.user_id == as_id))


async def get_by_ref(session: AsyncSession, ref: str) -> Provider | None:
    return await session.scalar(by_ref(ref))


async def get_for_user(session: AsyncSession, user_id: uuid.UUID) -> Provider | None:
    return await session.scalar(select(Provider).where(Provider.user_id == user_id))


async def handle_taken(
    session: AsyncSession, handle: str, *, excluding: uuid.UUID | None = None
) -> bool:
    query = select(Provider.id).where(Provider.public_handle == handle)
    if excluding is not None:
        query = query.where(Provider.id != excluding)
    return await session.scalar(query) is not None


def listed() -> ColumnElement[bool]:
    """The providers shown (and bookable) in public, on a query joined to their User: the
    query's form of `providers.service.is_listed`."""
    return and_(User.role == Role.PROVIDER, User.is_active, ~User.is_blocked)


async def search(
    session: AsyncSession, *, specialty: str | None, text: str | None, limit: int, offset: int
) -> tuple[list[Provider], int]:
    query = select(Provider).join(User, Provider.user_id == User.id).where(listed())
    if specialty:
        query = query.where(func.lower(Provider.specialty) == specialty.strip().lower())
    if text:
        escaped = text.strip().lower().replace("\\", "\\\\")
        escaped = escaped.replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(
            or_(
                func.lower(User.full_name).like(pattern, escape="\\"),
                func.lower(Provider.public_handle).like(pattern, escape="\\"),
                func.lower(Provider.specialty).like(pattern, escape="\\"),
                func.lower(Provider.bio).like(pattern, escape="\\"),
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(Provider.public_handle).limit(limit).offset(offset))
    return list(rows.unique()), int(total or 0)


async def list_services(
    session: AsyncSession, provider_id: uuid.UUID, *, active_only: bool
) -> list[Service]:
    query = select(Service).where(Service.provider_id == provider_id)
    if active_only:
        query = query.where(Service.is_active)
    rows = await session.scalars(query.order_by(Service.created_at, Service.id))
    return list(rows)


async def get_service(
    session: AsyncSession, provider_id: uuid.UUID, service_id: uuid.UUID
) -> Service | None:
    return await session.scalar(
        select(Service).where(Service.id == service_id, Service.provider_id == provider_id)
    )
