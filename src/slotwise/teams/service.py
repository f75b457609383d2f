"""Teams, their members and their services.

A team service is offered by each member as a service of their own (a ``services`` row
whose ``team_service_id`` names it, kept in step with it here), so a member's slots of it
are their own listing of that service, and a booking of it is an ordinary booking of the
member, decided and written as any (``slotwise.teams.booking``). Such a service is booked
through its team only (``scheduling.Request.for_team``), and changed through it only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.errors import Conflict, NotFound
from slotwise.providers import service as providers_service
from slotwise.providers.models import Provider, Service
from slotwise.teams import repository
from slotwise.teams.models import Team, TeamMember, TeamService
from slotwise.teams.schemas import (
    MemberAdd,
    MemberRead,
    TeamCreate,
    TeamRead,
    TeamServiceCreate,
    TeamServiceRead,
    TeamServiceUpdate,
    TeamUpdate,
)
from slotwise.users.models import Role, User


class TeamNotFound(NotFound):
    code = "team_not_found"
    message = "No such team."


class TeamServiceNotFound(NotFound):
    code = "team_service_not_found"
    message = "No such service of this team."


class MemberNotFound(NotFound):
    code = "team_member_not_found"
    message = "No such member of this team."


class TeamHandleTaken(Conflict):
    code = "team_handle_taken"
    message = "This team handle is taken."


class AlreadyMember(Conflict):
    code = "already_member"
    message = "This provider is already a member of the team."


class MemberNotAllowed(NotFound):
    """Adding another provider's calendar to a team takes an admin (or the provider)."""

    code = "provider_not_found"
    message = "No such provider (a team's owner adds their own profile; an admin, anyone's)."


@dataclass(frozen=True, slots=True)
class Member:
    """A member as a booking and a listing see them."""

    provider_id: uuid.UUID
    public_handle: str
    full_name: str
    timezone: str
    priority: int
    weight: int
    listed: bool

    @classmethod
    def of(cls, row: RowMapping) -> Member:
        return cls(
            provider_id=row["provider_id"],
            public_handle=row["public_handle"],
            full_name=row["full_name"],
            timezone=row["timezone"],
            priority=row["priority"],
            weight=row["weight"],
            listed=bool(row["listed"]),
        )


def can_manage(user: User | None, team: Team) -> bool:
    return user is not None and (user.role is Role.ADMIN or team.owner_id == user.id)


async def get_public(session: AsyncSession, *, ref: str) -> Team:
    team = await repository.get_by_ref(session, ref)
    if team is None:
        raise TeamNotFound()
    return team


async def get_managed(session: AsyncSession, *, user: User, ref: str) -> Team:
    """The team, if ``user`` owns it or is an admin; anyone else's team is not found."""
    team = await repository.get_by_ref(session, ref)
    if team is None or not can_manage(user, team):
        raise TeamNotFound()
    return team


async def members(session: AsyncSession, *, team: Team) -> list[Member]:
    return [Member.of(row) for row in await repository.members(session, team.id)]


async def read(session: AsyncSession, *, team: Team) -> TeamRead:
    found = await members(session, team=team)
    offered = await repository.services(session, team.id)
    return TeamRead(
        id=team.id,
        public_handle=team.public_handle,
        name=team.name,
        description=team.description,
        owner_id=team.owner_id,
        members=[
            MemberRead(
                provider_id=m.provider_id,
                public_handle=m.public_handle,
                full_name=m.full_name,
                timezone=m.timezone,
                priority=m.priority,
                weight=m.weight,
            )
            for m in found
        ],
        services=[TeamServiceRead.model_validate(s) for s in offered],
        created_at=team.created_at,
        updated_at=team.updated_at,
    )


async def _flush_unique(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise TeamHandleTaken() from exc


async def create(session: AsyncSession, *, user: User, data: TeamCreate, now: datetime) -> Team:
    """A team owned by its creator (a provider or an admin); an admin may name the owner."""
    if user.role is Role.CLIENT:
        raise providers_service.NotAProvider("Only providers and admins create teams.")
    owner_id = user.id
    if data.owner_id is not None and data.owner_id != user.id:
        if user.role is not Role.ADMIN:
            raise providers_service.NotAProvider("Only an admin names another owner.")
        owner_id = data.owner_id
    if await repository.handle_taken(session, data.public_handle):
        raise TeamHandleTaken()
    team = Team(
        public_handle=data.public_handle,
        name=data.name,
        description=data.description,
        owner_id=owner_id,
        created_at=now,
        updated_at=now,
    )
    session.add(team)
    await _flush_unique(session)
    return team


async def update(session: AsyncSession, *, team: Team, data: TeamUpdate, now: datetime) -> Team:
    changes = data.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None and field != "description":
            continue
        if field == "public_handle" and await repository.handle_taken(
            session, value, excluding=team.id
        ):
            raise TeamHandleTaken()
        setattr(team, field, value)
    team.updated_at = now
    await _flush_unique(session)
    return team


async def add_member(
    session: AsyncSession, *, user: User, team: Team, data: MemberAdd, now: datetime
) -> Member:
    """A provider joins the team, and offers each of its services. The owner adds their own
    profile; an admin adds anyone's (adding a provider lets the team book their time; anyone
    else's joins by accepting an invitation, ``slotwise.teams.invitations``)."""
    provider = await providers_service.get_public(session, ref=data.provider)
    if user.role is not Role.ADMIN and provider.user_id != user.id:
        raise MemberNotAllowed()
    return await join(
        session, team=team, provider=provider, priority=data.priority, weight=data.weight, now=now
    )


async def join(
    session: AsyncSession,
    *,
    team: Team,
    provider: Provider,
    priority: int,
    weight: int,
    now: datetime,
) -> Member:
    """The provider becomes a member, and offers each of the team's services: the one way
    in, whether added (``add_member``) or invited."""
    if await repository.get_member(session, team.id, provider.id) is not None:
        raise AlreadyMember()
    session.add(
        TeamMember(
            team_id=team.id,
            provider_id=provider.id,
            priority=priority,
            weight=weight,
            created_at=now,
            updated_at=now,
        )
    )
    try:
        await session.flush()
    except IntegrityError as exc:  # joined that moment by another request (the check above)
        raise AlreadyMember() from exc
    offered = await repository.services(session, team.id)
    kept = await repository.member_services(
        session, team_service_ids=[s.id for s in offered], provider_id=provider.id
    )
    shares = {share.team_service_id: share for share in kept}
    for team_service in offered:  # a member who comes back gets their old shares back
        share = shares.get(team_service.id)
        if share is None:
            session.add(_share(team_service, provider.id, now=now))
        else:
            _copy(team_service, share, now=now)
    await session.flush()
    return Member(
        provider_id=provider.id,
        public_handle=provider.public_handle,
        full_name=provider.full_name,
        timezone=provider.timezone,
        priority=priority,
        weight=weight,
        listed=True,
    )


async def remove_member(
    session: AsyncSession, *, team: Team, provider_ref: str, now: datetime
) -> None:
    """The provider leaves the team: their shares of its services are withdrawn (kept, for
    the bookings that name them); their bookings stay theirs."""
    found = next(
        (
            m
            for m in await members(session, team=team)
            if provider_ref.lower() in {m.public_handle, str(m.provider_id)}
        ),
        None,
    )
    if found is None:
        raise MemberNotFound()
    member = await repository.get_member(session, team.id, found.provider_id)
    assert member is not None
    offered = await repository.services(session, team.id)
    for share in await repository.member_services(
        session, team_service_ids=[s.id for s in offered], provider_id=found.provider_id
    ):
        share.is_active = False
        share.updated_at = now
    await session.delete(member)
    await session.flush()


def _share(team_service: TeamService, provider_id: uuid.UUID, *, now: datetime) -> Service:
    share = Service(
        provider_id=provider_id,
        team_service_id=team_service.id,
        capacity=1,
        created_at=now,
    )
    _copy(team_service, share, now=now)
    return share


def _copy(team_service: TeamService, share: Service, *, now: datetime) -> None:
    """The member's share as the team service is: its name, length, buffers, step, whether
    it is offered."""
    share.name = team_service.name
    share.description = team_service.description
    share.duration_minutes = team_service.duration_minutes
    share.buffer_before_minutes = team_service.buffer_before_minutes
    share.buffer_after_minutes = team_service.buffer_after_minutes
    share.slot_interval_minutes = team_service.slot_interval_minutes
    share.is_active = team_service.is_active
    share.updated_at = now


async def add_service(
    session: AsyncSession, *, team: Team, data: TeamServiceCreate, now: datetime
) -> TeamService:
    team_service = TeamService(team_id=team.id, created_at=now, updated_at=now, **data.model_dump())
    session.add(team_service)
    await session.flush()
    for member in await members(session, team=team):
        session.add(_share(team_service, member.provider_id, now=now))
    await session.flush()
    return team_service


async def get_service(session: AsyncSession, *, team: Team, service_id: uuid.UUID) -> TeamService:
    found = await repository.get_service(session, team.id, service_id)
    if found is None:
        raise TeamServiceNotFound()
    return found


async def update_service(
    session: AsyncSession,
    *,
    team: Team,
    service_id: uuid.UUID,
    data: TeamServiceUpdate,
    now: datetime,
) -> TeamService:
    """The team service changed, and every current member's share with it."""
    team_service = await get_service(session, team=team, service_id=service_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is None and field not in {"description", "slot_interval_minutes"}:
            continue
        setattr(team_service, field, value)
    team_service.updated_at = now
    current = {m.provider_id for m in await members(session, team=team)}
    for share in await repository.member_services(session, team_service_ids=[team_service.id]):
        if share.provider_id in current:
            _copy(team_service, share, now=now)
    await session.flush()
    return team_service


async def page(session: AsyncSession, *, limit: int, offset: int) -> tuple[list[Team], int]:
    return await repository.page(session, limit=limit, offset=offset)
