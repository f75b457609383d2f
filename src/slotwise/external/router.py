"""``/providers/me/calendars``: a provider's connected calendars (busy time in, bookings
out). A calendar's address and credentials go in and never come out."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from slotwise.apikeys.scopes import Scope, needs
from slotwise.auth import callers
from slotwise.auth.deps import CurrentUser, SignedInClaims
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.external import service, sync
from slotwise.external.keys import CalendarKeys
from slotwise.external.models import ExternalCalendar
from slotwise.external.schemas import CalendarCreate, CalendarRead
from slotwise.outbound import OutboundGuard
from slotwise.providers import service as providers_service
from slotwise.providers.models import Provider
from slotwise.shared import NowDep, SharedDep
from slotwise.state import AppState

router = APIRouter()


async def own_provider(user: CurrentUser, session: SessionDep) -> Provider:
    """The caller's provider profile (403 for an account that is not a provider's)."""
    return await providers_service.get_own(session, user=user)


OwnProvider = Annotated[Provider, Depends(own_provider)]


async def own_calendar(
    calendar_id: uuid.UUID, provider: OwnProvider, session: SessionDep
) -> ExternalCalendar:
    """The calendar in the path, if it is the caller's (404 otherwise)."""
    return await service.get_for(session, provider_id=provider.id, calendar_id=calendar_id)


OwnCalendar = Annotated[ExternalCalendar, Depends(own_calendar)]


def calendar_keys(request: Request) -> CalendarKeys:
    state: AppState = request.app.state.slotwise
    return state.calendar_keys


def _guard(shared: SharedDep) -> OutboundGuard:
    return OutboundGuard.from_settings(shared.settings)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CalendarRead,
    responses=responses(401, 403, 404, 409, 503),
    summary="Connect a calendar (an iCalendar URL or a CalDAV calendar)",
)
@needs(Scope.MANAGE)
async def connect_calendar(
    data: CalendarCreate,
    provider: OwnProvider,
    session: SessionDep,
    shared: SharedDep,
    keys: Annotated[CalendarKeys, Depends(calendar_keys)],
    guard: Annotated[OutboundGuard, Depends(_guard)],
    now: NowDep,
) -> CalendarRead:
    calendar = await service.connect(
        session,
        provider=provider,
        data=data,
        keys=keys,
        guard=guard,
        max_per_provider=shared.settings.calendar_max_per_provider,
        now=now,
    )
    return service.read(calendar)


@router.get(
    "",
    response_model=list[CalendarRead],
    responses=responses(401, 403, 404),
    summary="Your connected calendars and how their syncs went",
)
async def list_calendars(provider: OwnProvider, session: SessionDep) -> list[CalendarRead]:
    return [service.read(one) for one in await service.list_for(session, provider=provider)]


@router.get(
    "/{calendar_id}",
    response_model=CalendarRead,
    responses=responses(401, 403, 404),
    summary="One of your connected calendars",
)
async def get_calendar(calendar: OwnCalendar) -> CalendarRead:
    return service.read(calendar)


@router.post(
    "/{calendar_id}/sync",
    response_model=CalendarRead,
    responses=responses(401, 403, 404, 503),
    summary="Sync a calendar now (a paused one too: a good sync resumes it)",
)
@needs(Scope.MANAGE)
async def sync_calendar(
    calendar_id: uuid.UUID, request: Request, claims: SignedInClaims, now: NowDep
) -> CalendarRead:
    """The request's own session is not used: the fetch takes as long as the calendar
    takes, and no transaction (on SQLite, no write lock) is held across it. The caller and
    the calendar are checked in a short read, the busy time written in a short write."""
    state: AppState = request.app.state.slotwise
    async with state.db.transaction(writes=False) as session:
        user = await callers.user_for_claims(session, state.redis, claims)
        provider = await providers_service.get_own(session, user=user)
        await service.get_for(session, provider_id=provider.id, calendar_id=calendar_id)
    synced = await sync.sync(state.db, calendar_id, policy=state.calendar_sync, now=now)
    if synced is None:  # disconnected meanwhile
        raise service.CalendarNotFound()
    return service.read(synced)


@router.delete(
    "/{calendar_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Disconnect a calendar (its busy time goes with it)",
)
@needs(Scope.MANAGE)
async def disconnect_calendar(calendar: OwnCalendar, session: SessionDep) -> None:
    await service.disconnect(session, calendar=calendar)
