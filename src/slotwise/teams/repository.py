from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, RowMapping, Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking.models import Appointment, Status
from slotwise.providers.models import Provider, Service
from slotwise.providers.repository import listed
from slotwise.teams.models import Team, TeamMember, TeamService
from slotwise.users.models import User

# What counts as a member's booking of a team service for round robin: every booking that
# was not called off (a completed or missed one was given to that member all the same).
COUNTED = (Status.PENDING, Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW)
MAX_BUFFER = timedelta(minutes=240)  # providers.schemas.Buffer's bound


def by_ref(ref: str) -> Select[Team]:
    """By public handle or id."""
    try:
        as_id = uuid.UUID(ref)
    except ValueError:
        return select(Team).where(Team.public_handle == ref.lower())
    return select(Team).where(Team.id == as_id)


async def get_by_ref(session: AsyncSession, ref: str) -> Team | None:
    return await session.scalar(by_ref(ref))


async def handle_taken(
    session: AsyncSession, handle: str, *, excluding: uuid.UUID | None = None
) -> bool:
    query = select(Team.id).where(Team.public_handle == handle)
    if excluding is not None:
        query = query.where(Team.id != excluding)
    return await session.scalar(query) is not None


async def page(session: AsyncSession, *, limit: int, offset: int) -> tuple[list[Team], int]:
    total = await session.scalar(select(func.count()).select_from(Team))
    rows = await session.scalars(
        select(Team).order_by(Team.public_handle).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def members(session: AsyncSession, team_id: uuid.UUID) -> list[RowMapping]:
    """The team's members with their profiles, by priority (highest first), then handle;
    ``listed``: whether the provider is shown (and bookable) in public."""
    query = (
        select(
            TeamMember.provider_id,
            TeamMember.priority,
            TeamMember.weight,
            Provider.public_handle,
            Provider.timezone,
            User.full_name,
            listed().label("listed"),
        )
        .join(Provider, Provider.id == TeamMember.provider_id)
        .join(User, User.id == Provider.user_id)
        .where(TeamMember.team_id == team_id)
        .order_by(TeamMember.priority.desc(), Provider.public_handle)
    )
    return list((await session.execute(query)).mappings())


async def get_member(
    session: AsyncSession, team_id: uuid.UUID, provider_id: uuid.UUID
) -> TeamMember | None:
    return await session.get(TeamMember, (team_id, provider_id))


async def services(session: AsyncSession, team_id: uuid.UUID) -> list[TeamService]:
    rows = await session.scalars(
        select(TeamService)
        .where(TeamService.team_id == team_id)
        .order_by(TeamService.created_at, TeamService.id)
    )
    return list(rows)


async def get_service(
    session: AsyncSession, team_id: uuid.UUID, service_id: uuid.UUID
) -> TeamService | None:
    return await session.scalar(
        select(TeamService).where(TeamService.id == service_id, TeamService.team_id == team_id)
    )


async def member_services(
    session: AsyncSession,
    *,
    team_service_ids: list[uuid.UUID],
    provider_id: uuid.UUID | None = None,
) -> list[Service]:
    """The members' shares of team services (``services`` rows naming them)."""
    query = select(Service).where(Service.team_service_id.in_(team_service_ids))
    if provider_id is not None:
        query = query.where(Service.provider_id == provider_id)
    return list(await session.scalars(query))


async def booked_counts(
    session: AsyncSession,
    *,
    shares: list[uuid.UUID],
    providers: list[uuid.UUID],
    start_at: datetime,
    end_at: datetime,
) -> dict[uuid.UUID, int]:
    """Each member's bookings of their share (``shares``) starting in [start_at, end_at),
    read by the members' time index: their blocked time starts at most the longest buffer
    before the booking does."""
    query = (
        select(Appointment.provider_id, func.count())
        .where(
            Appointment.provider_id.in_(providers),
            Appointment.blocked_start_at >= start_at - MAX_BUFFER,
            Appointment.blocked_start_at < end_at,
            Appointment.start_at >= start_at,
            Appointment.start_at < end_at,
            Appointment.service_id.in_(shares),
            Appointment.status.in_(COUNTED),
        )
        .group_by(Appointment.provider_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(query)}


def _team_where(ref: str) -> ColumnElement[bool]:
    try:
        return Team.id == uuid.UUID(ref)
    except ValueError:
        return Team.public_handle == ref.lower()


async def booking_context(
    session: AsyncSession, ref: str, service_id: uuid.UUID
) -> tuple[Team | None, TeamService | None, list[RowMapping]]:
    """What a team booking reads, in one statement: the team, its service ``service_id``
    (None: not the team's), and each member with their share of it (``share_id``, None: no
    active share), in the team's order (``members``'s)."""
    query = (
        select(
            Team,
            TeamService,
            TeamMember.provider_id,
            TeamMember.priority,
            TeamMember.weight,
            Provider.public_handle,
            Provider.timezone,
            User.full_name,
            listed().label("listed"),
            Service.id.label("share_id"),
        )
        .select_from(Team)
        .outerjoin(TeamService, and_(TeamService.team_id == Team.id, TeamService.id == service_id))
        .outerjoin(TeamMember, and_(TeamMember.team_id == Team.id, TeamService.id.is_not(None)))
        .outerjoin(Provider, Provider.id == TeamMember.provider_id)
        .outerjoin(User, User.id == Provider.user_id)
        .outerjoin(
            Service,
            and_(
                Service.provider_id == TeamMember.provider_id,
                Service.team_service_id == TeamService.id,
                Service.is_active,
            ),
        )
        .where(_team_where(ref))
        .order_by(TeamMember.priority.desc(), Provider.public_handle)
    )
    rows = (await session.execute(query)).all()
    if not rows:
        return None, None, []
    team, team_service = rows[0][0], rows[0][1]
    members = [row._mapping for row in rows if row.provider_id is not None]
    return team, team_service, members
