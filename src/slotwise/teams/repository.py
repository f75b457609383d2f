from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, RowMapping, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.providers.models import Provider, Service
from slotwise.providers.repository import listed
from slotwise.teams.models import InvitationStatus, Team, TeamInvitation, TeamMember, TeamService
from slotwise.users.models import User


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


def _refs(refs: list[str]) -> ColumnElement[bool]:
    """Teams by public handle or id, each ref either."""
    ids, handles = [], []
    for ref in refs:
        try:
            ids.append(uuid.UUID(ref))
        except ValueError:
            handles.append(ref.lower())
    return or_(Team.id.in_(ids), Team.public_handle.in_(handles))


Context = tuple[Team | None, TeamService | None, list[RowMapping]]


async def booking_contexts(
    session: AsyncSession, asked: list[tuple[str, uuid.UUID]]
) -> list[Context]:
    """What team bookings read, for several at once in one statement: for each (team ref,
    service id), the team (None: no such team), its service of that id (None: not the
    team's), and each member with their share of it (``share_id``, None: no active share),
    in the team's order (``members``'s)."""
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
        .outerjoin(
            TeamService,
            and_(
                TeamService.team_id == Team.id,
                TeamService.id.in_(sorted({service_id for _ref, service_id in asked})),
            ),
        )
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
        .where(_refs([ref for ref, _service_id in asked]))
        .order_by(Team.id, TeamService.id, TeamMember.priority.desc(), Provider.public_handle)
    )
    teams: dict[str, Team] = {}  # by id and by handle: each ref's key (``_key``)
    found: dict[tuple[uuid.UUID, uuid.UUID], tuple[TeamService, list[RowMapping]]] = {}
    for row in (await session.execute(query)).all():
        team, team_service = row[0], row[1]
        teams[str(team.id)] = teams[team.public_handle] = team
        if team_service is not None:
            _service, members = found.setdefault((team.id, team_service.id), (team_service, []))
            if row.provider_id is not None:
                members.append(row._mapping)
    contexts: list[Context] = []
    for ref, service_id in asked:
        asked_team = teams.get(_key(ref))
        if asked_team is None:
            contexts.append((None, None, []))
        elif (asked_team.id, service_id) not in found:
            contexts.append((asked_team, None, []))
        else:
            contexts.append((asked_team, *found[asked_team.id, service_id]))
    return contexts


def _key(ref: str) -> str:
    """A team's ref as ``booking_contexts`` keeps teams: an id's text, or a handle."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        return ref.lower()


def _invitations() -> Select[TeamInvitation, Team, Provider]:
    return (
        select(TeamInvitation, Team, Provider)
        .join(Team, Team.id == TeamInvitation.team_id)
        .join(Provider, Provider.id == TeamInvitation.provider_id)
    )


async def get_invitation(
    session: AsyncSession,
    invitation_id: uuid.UUID,
    *,
    team_id: uuid.UUID | None = None,
    provider_id: uuid.UUID | None = None,
) -> tuple[TeamInvitation, Team, Provider] | None:
    """The invitation, if it is the team's (or the provider's) one, locked until the
    transaction ends on PostgreSQL (SQLite's writing transactions are one at a time): two
    answers at once are answered one after the other."""
    query = (
        _invitations().where(TeamInvitation.id == invitation_id).with_for_update(of=TeamInvitation)
    )
    if team_id is not None:
        query = query.where(TeamInvitation.team_id == team_id)
    if provider_id is not None:
        query = query.where(TeamInvitation.provider_id == provider_id)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1], row[2])


async def has_pending_invitation(
    session: AsyncSession, team_id: uuid.UUID, provider_id: uuid.UUID
) -> bool:
    query = select(TeamInvitation.id).where(
        TeamInvitation.team_id == team_id,
        TeamInvitation.provider_id == provider_id,
        TeamInvitation.status == InvitationStatus.PENDING,
    )
    return await session.scalar(query) is not None


async def invitations_page(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    team_id: uuid.UUID | None = None,
    provider_id: uuid.UUID | None = None,
    status: InvitationStatus | None = None,
) -> tuple[list[tuple[TeamInvitation, Team, Provider]], int]:
    """A team's invitations, or a provider's, newest first."""
    where = []
    if team_id is not None:
        where.append(TeamInvitation.team_id == team_id)
    if provider_id is not None:
        where.append(TeamInvitation.provider_id == provider_id)
    if status is not None:
        where.append(TeamInvitation.status == status)
    total = await session.scalar(select(func.count()).select_from(TeamInvitation).where(*where))
    rows = await session.execute(
        _invitations()
        .where(*where)
        .order_by(TeamInvitation.created_at.desc(), TeamInvitation.id)
        .limit(limit)
        .offset(offset)
    )
    return [(r[0], r[1], r[2]) for r in rows], int(total or 0)
