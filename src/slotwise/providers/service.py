"""Use cases on provider profiles and their services."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.errors import Conflict, Forbidden, NotFound
from slotwise.providers import repository
from slotwise.providers.models import Provider, Service
from slotwise.providers.schemas import (
    ProviderCreate,
    ProviderUpdate,
    ServiceCreate,
    ServiceUpdate,
)
from slotwise.users.models import Role, User

MY_PROFILE = "me"


class ProviderNotFound(NotFound):
    code = "provider_not_found"
    message = "No such provider."


class ServiceNotFound(NotFound):
    code = "service_not_found"
    message = "No such service."


class NotAProvider(Forbidden):
    code = "not_a_provider"
    message = "Only accounts with the provider role have a provider profile."


class ProfileMissing(NotFound):
    code = "provider_profile_missing"
    message = "You have no provider profile yet: create it with POST /providers/me."


class ProfileExists(Conflict):
    code = "provider_profile_exists"
    message = "You already have a provider profile."


class TeamServiceManaged(Conflict):
    code = "team_service_managed"
    message = "This service is a member's share of a team's service: change it through the team."


class HandleTaken(Conflict):
    code = "handle_taken"
    message = "This public handle is taken."


def is_listed(provider: Provider) -> bool:
    """Only an active, unblocked account with the provider role is shown (and offered, and
    bookable) in public: a deactivated, suspended or demoted one is not."""
    user = provider.user
    return user.role is Role.PROVIDER and user.is_active and not user.is_blocked


async def get_public(session: AsyncSession, *, ref: str) -> Provider:
    provider = await repository.get_by_ref(session, ref)
    if provider is None or not is_listed(provider):
        raise ProviderNotFound()
    return provider


async def get_own(session: AsyncSession, *, user: User) -> Provider:
    if user.role is not Role.PROVIDER:
        raise NotAProvider()
    provider = await repository.get_for_user(session, user.id)
    if provider is None:
        raise ProfileMissing()
    return provider


def can_manage(user: User | None, provider: Provider) -> bool:
    return user is not None and (user.role is Role.ADMIN or provider.user_id == user.id)


async def get_managed(session: AsyncSession, *, user: User, ref: str) -> Provider:
    """The provider ``ref`` ("me", handle or id) if ``user`` owns it or is an admin."""
    if ref == MY_PROFILE:
        return await get_own(session, user=user)
    if user.role is Role.ADMIN:
        found = await repository.get_by_ref(session, ref)
        if found is None:
            raise ProviderNotFound()
        return found
    provider = await get_public(session, ref=ref)
    if not can_manage(user, provider):
        raise Forbidden("Only the provider or an admin can change this.")
    return provider


async def _flush_unique(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise HandleTaken() from exc


async def create_profile(
    session: AsyncSession, *, user: User, data: ProviderCreate, default_timezone: str, now: datetime
) -> Provider:
    if user.role is not Role.PROVIDER:
        raise NotAProvider()
    if await repository.get_for_user(session, user.id) is not None:
        raise ProfileExists()
    if await repository.handle_taken(session, data.public_handle):
        raise HandleTaken()
    fields = data.model_dump(exclude_none=True)
    fields.setdefault("timezone", user.timezone or default_timezone)
    provider = Provider(user_id=user.id, created_at=now, updated_at=now, **fields)
    provider.user = user
    session.add(provider)
    await _flush_unique(session)
    return provider


async def update_profile(
    session: AsyncSession, *, provider: Provider, data: ProviderUpdate, now: datetime
) -> Provider:
    changes = data.model_dump(exclude_unset=True)
    nullable = {
        "specialty",
        "bio",
        "slot_interval_minutes",
        "max_bookings_per_day",
        "max_bookings_per_week",
        "max_active_bookings_per_client",
    }
    for field, value in changes.items():
        if value is None and field not in nullable:
            continue  # null means "leave as is" for required fields
        if field == "public_handle" and await repository.handle_taken(
            session, value, excluding=provider.id
        ):
            raise HandleTaken()
        setattr(provider, field, value)
    provider.updated_at = now
    await _flush_unique(session)
    return provider


async def search(
    session: AsyncSession, *, specialty: str | None, text: str | None, limit: int, offset: int
) -> tuple[list[Provider], int]:
    return await repository.search(
        session, specialty=specialty, text=text, limit=limit, offset=offset
    )


async def list_services(
    session: AsyncSession, *, provider: Provider, include_inactive: bool
) -> list[Service]:
    """The provider's services; in public, the active ones of its own (a member's share of a
    team's service is booked through the team: ``slotwise.teams``)."""
    rows = await repository.list_services(session, provider.id, active_only=not include_inactive)
    return [row for row in rows if include_inactive or row.team_service_id is None]


async def _own_service(
    session: AsyncSession, *, provider: Provider, service_id: uuid.UUID
) -> Service:
    """A service the provider changes itself: not a team's (TeamServiceManaged)."""
    service = await get_service(session, provider=provider, service_id=service_id)
    if service.team_service_id is not None:
        raise TeamServiceManaged()
    return service


async def get_service(
    session: AsyncSession, *, provider: Provider, service_id: uuid.UUID, active_only: bool = False
) -> Service:
    service = await repository.get_service(session, provider.id, service_id)
    if service is None or (active_only and not service.is_active):
        raise ServiceNotFound()
    return service


async def create_service(
    session: AsyncSession, *, provider: Provider, data: ServiceCreate, now: datetime
) -> Service:
    service = Service(provider_id=provider.id, created_at=now, updated_at=now, **data.model_dump())
    session.add(service)
    await session.flush()
    return service


async def update_service(
    session: AsyncSession,
    *,
    provider: Provider,
    service_id: uuid.UUID,
    data: ServiceUpdate,
    now: datetime,
) -> Service:
    service = await _own_service(session, provider=provider, service_id=service_id)
    nullable = {"description", "slot_interval_minutes"}
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is None and field not in nullable:
            continue
        setattr(service, field, value)
    service.updated_at = now
    await session.flush()
    return service


async def deactivate_service(
    session: AsyncSession, *, provider: Provider, service_id: uuid.UUID, now: datetime
) -> Service:
    service = await _own_service(session, provider=provider, service_id=service_id)
    service.is_active = False
    service.updated_at = now
    await session.flush()
    return service
