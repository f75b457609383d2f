"""Teams: their members and services (an admin or the team's owner), their slots and their
bookings (anyone, as for a provider). Mounted at /teams (``booking_router`` too)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import Response

from slotwise.apikeys.scopes import Scope, needs
from slotwise.auth import callers
from slotwise.auth.deps import CurrentUser, OptionalClaims, OptionalUser
from slotwise.availability.search_schemas import SearchOrder
from slotwise.booking.pools import NotPooled
from slotwise.booking.present import booking_created
from slotwise.booking.router import REFUSALS, booking_caller, synced_for
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.pagination import Page, PageParams, page_params
from slotwise.state import AppState, NowDep, StateDep
from slotwise.teams import booking as team_booking
from slotwise.teams import invitations, service
from slotwise.teams import slots as team_slots
from slotwise.teams.models import Team
from slotwise.teams.schemas import (
    AssignedRead,
    InvitationCreate,
    InvitationRead,
    MemberAdd,
    MemberRead,
    TeamBookingCreate,
    TeamBookingRead,
    TeamCreate,
    TeamRead,
    TeamServiceCreate,
    TeamServiceRead,
    TeamServiceUpdate,
    TeamSlotQuery,
    TeamSlotsRead,
    TeamUpdate,
)
from slotwise.text import Text

router = APIRouter()
# The booking route alone, early in the application's table (``main.create_app``): FastAPI
# tries routes one by one, and this one is as hot as a provider's booking.
booking_router = APIRouter()
# A provider's own invitations, at /providers/me/team-invitations (``main.API_ROUTERS``).
my_invitations_router = APIRouter()

TeamRef = Annotated[
    Text, Path(min_length=1, max_length=64, description="The team's public handle or id.")
]


async def managed_team(ref: TeamRef, user: CurrentUser, session: SessionDep) -> Team:
    """The team in the path, if the caller owns it or is an admin; else not found."""
    return await service.get_managed(session, user=user, ref=ref)


async def viewed_team(ref: TeamRef, session: SessionDep) -> Team:
    return await service.get_public(session, ref=ref)


ManagedTeam = Annotated[Team, Depends(managed_team)]
ViewedTeam = Annotated[Team, Depends(viewed_team)]


@router.get("", response_model=Page[TeamRead], summary="Teams, by handle")
async def list_teams(
    session: SessionDep, page: Annotated[PageParams, Depends(page_params)]
) -> Page[TeamRead]:
    teams, total = await service.page(session, limit=page.limit, offset=page.offset)
    return Page[TeamRead](
        items=[await service.read(session, team=team) for team in teams],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamRead,
    responses=responses(401, 403, 409),
    summary="Create a team (providers and admins; you own it)",
)
@needs(Scope.MANAGE)
async def create_team(
    data: TeamCreate, user: CurrentUser, session: SessionDep, now: NowDep
) -> TeamRead:
    team = await service.create(session, user=user, data=data, now=now)
    return await service.read(session, team=team)


@router.get(
    "/{ref}", response_model=TeamRead, responses=responses(404), summary="A team: members, services"
)
async def read_team(team: ViewedTeam, session: SessionDep) -> TeamRead:
    return await service.read(session, team=team)


@router.patch(
    "/{ref}",
    response_model=TeamRead,
    responses=responses(401, 404, 409),
    summary="Change a team (its owner or an admin)",
)
@needs(Scope.MANAGE)
async def update_team(
    data: TeamUpdate, team: ManagedTeam, session: SessionDep, now: NowDep
) -> TeamRead:
    updated = await service.update(session, team=team, data=data, now=now)
    return await service.read(session, team=updated)


@router.post(
    "/{ref}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberRead,
    responses=responses(401, 404, 409),
    summary="Add a member (the owner adds their own profile; an admin, anyone's)",
)
@needs(Scope.MANAGE)
async def add_member(
    data: MemberAdd, team: ManagedTeam, user: CurrentUser, session: SessionDep, now: NowDep
) -> MemberRead:
    member = await service.add_member(session, user=user, team=team, data=data, now=now)
    return MemberRead(
        provider_id=member.provider_id,
        public_handle=member.public_handle,
        full_name=member.full_name,
        timezone=member.timezone,
        priority=member.priority,
        weight=member.weight,
    )


@router.delete(
    "/{ref}/members/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Leave a team (you, a member; your bookings stay yours)",
    description="404 `team_member_not_found`: you are not a member of this team.",
)
@needs(Scope.MANAGE)
async def leave_team(user: CurrentUser, team: ViewedTeam, session: SessionDep, now: NowDep) -> None:
    await invitations.leave(session, user=user, team=team, now=now)


@router.delete(
    "/{ref}/members/{provider}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 404),
    summary="Remove a member (their bookings stay theirs)",
)
@needs(Scope.MANAGE)
async def remove_member(
    provider: Annotated[Text, Path(min_length=1, max_length=64, description="Handle or id.")],
    team: ManagedTeam,
    session: SessionDep,
    now: NowDep,
) -> None:
    await service.remove_member(session, team=team, provider_ref=provider, now=now)


@router.post(
    "/{ref}/invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationRead,
    responses=responses(401, 404, 409),
    summary="Invite a provider to the team (its owner or an admin)",
    description="The provider is emailed, and joins by accepting. 409 `already_member`, "
    "`already_invited` (a pending invitation); 404 `provider_not_found`.",
)
@needs(Scope.MANAGE)
async def invite(
    data: InvitationCreate, team: ManagedTeam, session: SessionDep, now: NowDep
) -> InvitationRead:
    return await invitations.invite(session, team=team, data=data, now=now)


@router.get(
    "/{ref}/invitations",
    response_model=Page[InvitationRead],
    responses=responses(401, 404),
    summary="The team's invitations, newest first (its owner or an admin)",
)
async def list_invitations(
    team: ManagedTeam, session: SessionDep, page: Annotated[PageParams, Depends(page_params)]
) -> Page[InvitationRead]:
    items, total = await invitations.for_team(
        session, team=team, limit=page.limit, offset=page.offset
    )
    return Page[InvitationRead](items=items, total=total, limit=page.limit, offset=page.offset)


@router.delete(
    "/{ref}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 404, 409),
    summary="Withdraw a pending invitation (the team's owner or an admin)",
    description="409 `team_invitation_not_pending`: already accepted, declined or withdrawn.",
)
@needs(Scope.MANAGE)
async def withdraw_invitation(
    invitation_id: uuid.UUID, team: ManagedTeam, session: SessionDep, now: NowDep
) -> None:
    await invitations.withdraw(session, team=team, invitation_id=invitation_id, now=now)


@router.post(
    "/{ref}/services",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamServiceRead,
    responses=responses(401, 404),
    summary="Offer a team service (round robin or collective)",
)
@needs(Scope.MANAGE)
async def add_service(
    data: TeamServiceCreate, team: ManagedTeam, session: SessionDep, now: NowDep
) -> TeamServiceRead:
    created = await service.add_service(session, team=team, data=data, now=now)
    return TeamServiceRead.model_validate(created)


@router.patch(
    "/{ref}/services/{service_id}",
    response_model=TeamServiceRead,
    responses=responses(401, 404),
    summary="Change a team service (every member's share follows)",
)
@needs(Scope.MANAGE)
async def update_service(
    service_id: uuid.UUID,
    data: TeamServiceUpdate,
    team: ManagedTeam,
    session: SessionDep,
    now: NowDep,
) -> TeamServiceRead:
    updated = await service.update_service(
        session, team=team, service_id=service_id, data=data, now=now
    )
    return TeamServiceRead.model_validate(updated)


@router.get(
    "/{ref}/slots",
    response_model=TeamSlotsRead,
    response_model_exclude_none=True,
    responses=responses(404, 422),
    summary="A team service's open slots: any member free (round robin), all (collective)",
    description="Earliest first, or with `order=best` the same slots best first for the "
    "signed-in client (or anyone), each with `score` and `reasons` (`ranked_by` says how).",
)
async def list_team_slots(
    query: Annotated[TeamSlotQuery, Query()],
    team: ViewedTeam,
    user: OptionalUser,
    session: SessionDep,
    app: StateDep,
    now: NowDep,
) -> TeamSlotsRead:
    history = None
    if query.order is SearchOrder.BEST and user is not None:
        history = await app.client_history(session, user.email.lower(), now)
    return await team_slots.team_slots(
        session, app.slots, team=team, query=query, now=now, ranker=app.ranker, history=history
    )


@booking_router.post(
    "/{ref}/appointments",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamBookingRead,
    responses=responses(401, 404, 409, 422, 429),
    summary="Book a team service, signed in or as a guest",
    description="Round robin: one member, chosen by the team's rule; collective: every "
    "member, all or nothing. Refusals are a booking's (a member's, the first in the team's "
    "order), and: 422 `offset_required` (a start without its UTC offset), 409 "
    "`collective_needs_sign_in` (a guest, where a member verifies guests' emails), 404 "
    "`team_not_found`, `team_service_not_found`.\n\n" + REFUSALS,
)
@needs(Scope.BOOK)
async def book_team(
    request: Request,
    ref: TeamRef,
    data: TeamBookingCreate,
    claims: OptionalClaims,
    now: NowDep,
) -> Response:
    app: AppState = request.app.state.slotwise
    claims = await booking_caller(app, request, claims, for_guest=data.guest_details is not None)
    if app.syncs_calendars_first:  # every member who may be placed: the choice reads them all
        async with app.db.transaction(writes=False) as session:
            members = await team_booking.members_offering(session, ref, data.service_id)
        await synced_for(app, claims, [str(member) for member in members], now)
    asked = team_booking.request(ref, data)
    try:  # round robin: decided and written with the bookings that arrive alongside
        pool, booked = await app.bookings.submit_pooled(claims=claims, request=asked, now=now)
        done = team_booking.round_robin_booked(pool, booked)
    except NotPooled:  # collective: every member at once, in a transaction of its own
        async with app.db.transaction(writes=True) as session:
            user = await callers.user_for_claims(session, app.redis, claims) if claims else None
            done = await team_booking.book_collective(
                session,
                kept_terms=app.terms,
                team_ref=ref,
                user=user,
                data=data,
                now=now,
                guests=app.bookings.guests,
            )
    body = TeamBookingRead(
        team_id=done.team.id,
        service_id=done.team_service.id,
        mode=done.team_service.mode,
        team_booking_id=done.team_booking_id,
        assigned=[
            AssignedRead(
                provider_id=member.provider_id,
                public_handle=member.public_handle,
                full_name=member.full_name,
            )
            for member, _booked in done.booked
        ],
        appointments=[
            booking_created(booked.appointment, booked.manage_token) for _m, booked in done.booked
        ],
    )
    return Response(body.model_dump_json(), status_code=201, media_type="application/json")


@my_invitations_router.get(
    "",
    response_model=Page[InvitationRead],
    responses=responses(401, 403, 404),
    summary="Your pending invitations to teams (providers)",
)
async def my_invitations(
    user: CurrentUser, session: SessionDep, page: Annotated[PageParams, Depends(page_params)]
) -> Page[InvitationRead]:
    items, total = await invitations.pending_for(
        session, user=user, limit=page.limit, offset=page.offset
    )
    return Page[InvitationRead](items=items, total=total, limit=page.limit, offset=page.offset)


@my_invitations_router.post(
    "/{invitation_id}/accept",
    response_model=InvitationRead,
    responses=responses(401, 403, 404, 409),
    summary="Accept an invitation: you join the team, and offer each of its services",
    description="409 `team_invitation_not_pending` (declined or withdrawn), `already_member`.",
)
@needs(Scope.MANAGE)
async def accept_invitation(
    invitation_id: uuid.UUID, user: CurrentUser, session: SessionDep, now: NowDep
) -> InvitationRead:
    return await invitations.accept(session, user=user, invitation_id=invitation_id, now=now)


@my_invitations_router.post(
    "/{invitation_id}/decline",
    response_model=InvitationRead,
    responses=responses(401, 403, 404, 409),
    summary="Decline an invitation to a team",
    description="409 `team_invitation_not_pending`: already accepted or withdrawn.",
)
@needs(Scope.MANAGE)
async def decline_invitation(
    invitation_id: uuid.UUID, user: CurrentUser, session: SessionDep, now: NowDep
) -> InvitationRead:
    return await invitations.decline(session, user=user, invitation_id=invitation_id, now=now)
