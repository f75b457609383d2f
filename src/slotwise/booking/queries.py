"""Reading appointments: each caller sees their own; admins see all."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking import repository
from slotwise.booking.models import ACTIVE_STATUSES, Appointment, ClientStanding, Status
from slotwise.providers import repository as providers_repo
from slotwise.users.models import Role, User


async def page_for(
    session: AsyncSession,
    *,
    user: User,
    statuses: list[Status] | None,
    start_from: datetime | None,
    start_to: datetime | None,
    provider_id: uuid.UUID | None,
    limit: int,
    offset: int,
    as_client_and_provider: bool = False,
) -> tuple[list[Appointment], int]:
    own_provider = None
    if user.role is Role.PROVIDER:
        own_provider = await providers_repo.get_for_user(session, user.id)
    everyone = user.role is Role.ADMIN and not as_client_and_provider
    visible = repository.visible_to(
        client_id=user.id,
        provider_id=own_provider.id if own_provider else None,
        everyone=everyone,
    )
    return await repository.page(
        session,
        visible=visible,
        statuses=statuses,
        start_from=start_from,
        start_to=start_to,
        provider_id=provider_id,
        limit=limit,
        offset=offset,
    )


async def upcoming_for_provider(
    session: AsyncSession, *, provider_id: uuid.UUID, now: datetime, limit: int, offset: int
) -> tuple[list[Appointment], int]:
    visible = repository.visible_to(client_id=None, provider_id=provider_id, everyone=False)
    return await repository.page(
        session,
        visible=visible,
        statuses=list(ACTIVE_STATUSES),
        start_from=now,
        start_to=None,
        provider_id=None,
        limit=limit,
        offset=offset,
    )


async def standings(
    session: AsyncSession, *, blocked: bool | None, limit: int, offset: int
) -> tuple[list[ClientStanding], int]:
    return await repository.standings_page(session, blocked=blocked, limit=limit, offset=offset)


async def update_standing(
    session: AsyncSession, *, email: str, blocked: bool, reset_no_shows: bool, now: datetime
) -> ClientStanding:
    standing = await repository.standing(session, email)
    if standing is None:  # an admin may block an email before any no-show
        standing = ClientStanding(
            email=email, no_show_count=0, blocked=False, created_at=now, updated_at=now
        )
        session.add(standing)
    standing.blocked = blocked
    if reset_no_shows:
        standing.no_show_count = 0
    standing.updated_at = now
    await session.flush()
    return standing
