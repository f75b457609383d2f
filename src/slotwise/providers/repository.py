from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, RowMapping, Select, and_, func, null, or_, select
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


def _text_in_profile(text: str) -> ColumnElement[bool]:
    """The text, any case, in the name, handle, specialty or bio (LIKE's wildcards escaped)."""
    escaped = text.strip().lower().replace("\\", "\\\\")
    escaped = escaped.replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return or_(
        func.lower(User.full_name).like(pattern, escape="\\"),
        func.lower(Provider.public_handle).like(pattern, escape="\\"),
        func.lower(Provider.specialty).like(pattern, escape="\\"),
        func.lower(Provider.bio).like(pattern, escape="\\"),
    )


async def search(
    session: AsyncSession, *, specialty: str | None, text: str | None, limit: int, offset: int
) -> tuple[list[Provider], int]:
    query = select(Provider).join(User, Provider.user_id == User.id).where(listed())
    if specialty:
        query = query.where(func.lower(Provider.specialty) == specialty.strip().lower())
    if text:
        query = query.where(_text_in_profile(text))
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


async def bookable_offers(
    session: AsyncSession,
    *,
    service: str | uuid.UUID | None,
    specialty: str | None,
    text: str | None,
    limit: int,
) -> list[RowMapping]:
    """What a search across providers lists, by handle: each listed provider accepting
    bookings that matches every filter given, with the service searched for (an active one
    named ``service``, any case, or with that id: a provider offering two of that name gives
    two rows; never a member's share of a team's service, booked through its team only),
    else its default session (no service). At most ``limit`` rows."""
    query = (
        select(
            Provider.id.label("provider_id"),
            Provider.public_handle,
            User.full_name,
            Provider.timezone,
        )
        .join(User, Provider.user_id == User.id)
        .where(listed(), Provider.accepting_bookings)
    )
    if service is None:
        query = query.add_columns(
            null().label("service_id"),
            null().label("service_name"),
            Provider.session_duration_minutes.label("duration_minutes"),
        ).order_by(Provider.public_handle)
    else:
        matches = (
            Service.id == service
            if isinstance(service, uuid.UUID)
            else func.lower(Service.name) == service.strip().lower()
        )
        query = (
            query.join(Service, Service.provider_id == Provider.id)
            .where(Service.is_active, Service.team_service_id.is_(None), matches)
            .add_columns(
                Service.id.label("service_id"),
                Service.name.label("service_name"),
                Service.duration_minutes,
            )
            .order_by(Provider.public_handle, Service.id)
        )
    if specialty:
        query = query.where(func.lower(Provider.specialty) == specialty.strip().lower())
    if text:
        query = query.where(_text_in_profile(text))
    return list((await session.execute(query.limit(limit))).mappings())
