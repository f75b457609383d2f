"""Invitations to a team: its owner (or an admin) invites a provider, who joins by accepting
(their consent to the team's booking their time) or declines; the owner may withdraw a
pending one. A member may also leave a team by themself (``leave``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.errors import Conflict, NotFound
from slotwise.notifications import outbox
from slotwise.providers import service as providers_service
from slotwise.providers.models import Provider
from slotwise.teams import repository, service
from slotwise.teams.models import InvitationStatus, Team, TeamInvitation
from slotwise.teams.schemas import (
    InvitationCreate,
    InvitationProvider,
    InvitationRead,
    InvitationTeam,
)
from slotwise.users.models import User


class InvitationNotFound(NotFound):
    code = "team_invitation_not_found"
    message = "No such invitation."


class AlreadyInvited(Conflict):
    code = "already_invited"
    message = "This provider has a pending invitation to the team."


class InvitationNotPending(Conflict):
    code = "team_invitation_not_pending"
    message = "This invitation was already accepted, declined or withdrawn."


def read(invitation: TeamInvitation, team: Team, provider: Provider) -> InvitationRead:
    return InvitationRead(
        id=invitation.id,
        team=InvitationTeam(id=team.id, public_handle=team.public_handle, name=team.name),
        provider=InvitationProvider(
            id=provider.id, public_handle=provider.public_handle, full_name=provider.full_name
        ),
        status=invitation.status,
        priority=invitation.priority,
        weight=invitation.weight,
        created_at=invitation.created_at,
        responded_at=invitation.responded_at,
    )


async def invite(
    session: AsyncSession, *, team: Team, data: InvitationCreate, now: datetime
) -> InvitationRead:
    """A pending invitation, mailed to the provider (through the outbox)."""
    provider = await providers_service.get_public(session, ref=data.provider)
    if await repository.get_member(session, team.id, provider.id) is not None:
        raise service.AlreadyMember()
    if await repository.has_pending_invitation(session, team.id, provider.id):
        raise AlreadyInvited()
    invitation = TeamInvitation(
        team_id=team.id,
        provider_id=provider.id,
        priority=data.priority,
        weight=data.weight,
        status=InvitationStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(invitation)
    try:  # two invitations at once: the partial unique index keeps one
        await session.flush()
    except IntegrityError as exc:
        raise AlreadyInvited() from exc
    await outbox.enqueue_team_invitation(
        session,
        email=provider.user.email,
        name=provider.full_name,
        timezone=provider.timezone,
        team=team.name,
        team_handle=team.public_handle,
        invitation_id=str(invitation.id),
        now=now,
    )
    return read(invitation, team, provider)


async def for_team(
    session: AsyncSession, *, team: Team, limit: int, offset: int
) -> tuple[list[InvitationRead], int]:
    rows, total = await repository.invitations_page(
        session, team_id=team.id, limit=limit, offset=offset
    )
    return [read(*row) for row in rows], total


async def pending_for(
    session: AsyncSession, *, user: User, limit: int, offset: int
) -> tuple[list[InvitationRead], int]:
    """The signed-in provider's pending invitations."""
    provider = await providers_service.get_own(session, user=user)
    rows, total = await repository.invitations_page(
        session,
        provider_id=provider.id,
        status=InvitationStatus.PENDING,
        limit=limit,
        offset=offset,
    )
    return [read(*row) for row in rows], total


def _answer(invitation: TeamInvitation, status: InvitationStatus, now: datetime) -> None:
    if invitation.status is not InvitationStatus.PENDING:
        raise InvitationNotPending()
    invitation.status = status
    invitation.responded_at = now
    invitation.updated_at = now


async def withdraw(
    session: AsyncSession, *, team: Team, invitation_id: uuid.UUID, now: datetime
) -> None:
    found = await repository.get_invitation(session, invitation_id, team_id=team.id)
    if found is None:
        raise InvitationNotFound()
    _answer(found[0], InvitationStatus.WITHDRAWN, now)
    await session.flush()


async def _own(
    session: AsyncSession, user: User, invitation_id: uuid.UUID
) -> tuple[TeamInvitation, Team, Provider]:
    """The invitation, if it is to the signed-in provider; anyone else's is not found."""
    provider = await providers_service.get_own(session, user=user)
    found = await repository.get_invitation(session, invitation_id, provider_id=provider.id)
    if found is None:
        raise InvitationNotFound()
    return found


async def accept(
    session: AsyncSession, *, user: User, invitation_id: uuid.UUID, now: datetime
) -> InvitationRead:
    """The provider joins the team as ``service.join`` makes a member, with the invitation's
    priority and weight."""
    invitation, team, provider = await _own(session, user, invitation_id)
    _answer(invitation, InvitationStatus.ACCEPTED, now)
    await service.join(
        session,
        team=team,
        provider=provider,
        priority=invitation.priority,
        weight=invitation.weight,
        now=now,
    )
    return read(invitation, team, provider)


async def decline(
    session: AsyncSession, *, user: User, invitation_id: uuid.UUID, now: datetime
) -> InvitationRead:
    invitation, team, provider = await _own(session, user, invitation_id)
    _answer(invitation, InvitationStatus.DECLINED, now)
    await session.flush()
    return read(invitation, team, provider)


async def leave(session: AsyncSession, *, user: User, team: Team, now: datetime) -> None:
    """The signed-in provider leaves the team, as ``service.remove_member`` removes one."""
    provider = await providers_service.get_own(session, user=user)
    await service.remove_member(session, team=team, provider_ref=str(provider.id), now=now)
