"""Provider profiles and services. Mounted at /providers, and at /tutors and /doctors."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from slotwise.apikeys.scopes import Scope, needs
from slotwise.auth.deps import CurrentUser, OptionalUser
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.pagination import Page, PageParams, page_params
from slotwise.providers import service
from slotwise.providers.deps import ManagedProvider, ViewedProvider
from slotwise.providers.models import Provider
from slotwise.providers.schemas import (
    ProviderCreate,
    ProviderPublicRead,
    ProviderRead,
    ProviderUpdate,
    ServiceCreate,
    ServiceRead,
    ServiceUpdate,
)
from slotwise.state import NowDep, StateDep
from slotwise.text import Text

router = APIRouter()


@router.get("", response_model=Page[ProviderRead], summary="List and search providers")
async def list_providers(
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params)],
    specialty: Annotated[Text | None, Query(max_length=120, description="Exact, any case.")] = None,
    q: Annotated[
        Text | None, Query(max_length=120, description="Text in name, handle, specialty, bio.")
    ] = None,
) -> Page[ProviderRead]:
    providers, total = await service.search(
        session, specialty=specialty, text=q, limit=page.limit, offset=page.offset
    )
    return Page[ProviderRead](
        items=[ProviderRead.model_validate(p) for p in providers],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "/me",
    status_code=status.HTTP_201_CREATED,
    response_model=ProviderRead,
    responses=responses(401, 403, 409),
    summary="Create your provider profile (provider role)",
)
@needs(Scope.MANAGE)
async def create_my_profile(
    data: ProviderCreate, user: CurrentUser, session: SessionDep, app: StateDep, now: NowDep
) -> ProviderRead:
    provider = await service.create_profile(
        session, user=user, data=data, default_timezone=app.settings.default_timezone, now=now
    )
    return ProviderRead.model_validate(provider)


@router.get(
    "/me",
    response_model=ProviderRead,
    responses=responses(401, 403, 404),
    summary="Your provider profile",
)
async def read_my_profile(user: CurrentUser, session: SessionDep) -> ProviderRead:
    return ProviderRead.model_validate(await service.get_own(session, user=user))


async def _update(
    provider: Provider, data: ProviderUpdate, session: SessionDep, now: NowDep
) -> ProviderRead:
    updated = await service.update_profile(session, provider=provider, data=data, now=now)
    return ProviderRead.model_validate(updated)


@router.put(
    "/me",
    response_model=ProviderRead,
    responses=responses(401, 403, 404, 409),
    summary="Update your provider profile (fields left out keep their value)",
)
@router.patch(
    "/me",
    response_model=ProviderRead,
    responses=responses(401, 403, 404, 409),
    summary="Update your provider profile",
)
@needs(Scope.MANAGE)
async def update_my_profile(
    data: ProviderUpdate, user: CurrentUser, session: SessionDep, now: NowDep
) -> ProviderRead:
    provider = await service.get_own(session, user=user)
    return await _update(provider, data, session, now)


@router.get(
    "/{ref}",
    response_model=ProviderPublicRead,
    responses=responses(404),
    summary="A provider's public profile with the services on offer",
)
async def read_profile(provider: ViewedProvider, session: SessionDep) -> ProviderPublicRead:
    services = await service.list_services(session, provider=provider, include_inactive=False)
    read = ProviderRead.model_validate(provider)
    return ProviderPublicRead(
        **read.model_dump(), services=[ServiceRead.model_validate(s) for s in services]
    )


@router.put(
    "/{ref}",
    response_model=ProviderRead,
    responses=responses(401, 403, 404, 409),
    summary="Update a provider's profile (the provider or an admin)",
)
@router.patch(
    "/{ref}",
    response_model=ProviderRead,
    responses=responses(401, 403, 404, 409),
    summary="Update a provider's profile (the provider or an admin)",
)
@needs(Scope.MANAGE)
async def update_profile(
    data: ProviderUpdate, provider: ManagedProvider, session: SessionDep, now: NowDep
) -> ProviderRead:
    return await _update(provider, data, session, now)


@router.get(
    "/{ref}/services",
    response_model=list[ServiceRead],
    responses=responses(401, 404),
    summary="A provider's services (inactive ones too, for the provider or an admin)",
)
async def list_services(
    provider: ViewedProvider, user: OptionalUser, session: SessionDep
) -> list[ServiceRead]:
    include_inactive = service.can_manage(user, provider)
    rows = await service.list_services(
        session, provider=provider, include_inactive=include_inactive
    )
    return [ServiceRead.model_validate(row) for row in rows]


@router.post(
    "/{ref}/services",
    status_code=status.HTTP_201_CREATED,
    response_model=ServiceRead,
    responses=responses(401, 403, 404),
    summary="Offer a new service",
)
@needs(Scope.MANAGE)
async def create_service(
    data: ServiceCreate, provider: ManagedProvider, session: SessionDep, now: NowDep
) -> ServiceRead:
    created = await service.create_service(session, provider=provider, data=data, now=now)
    return ServiceRead.model_validate(created)


@router.patch(
    "/{ref}/services/{service_id}",
    response_model=ServiceRead,
    responses=responses(401, 403, 404, 409),
    summary="Change a service",
)
@router.put(
    "/{ref}/services/{service_id}",
    response_model=ServiceRead,
    responses=responses(401, 403, 404, 409),
    summary="Change a service",
)
@needs(Scope.MANAGE)
async def update_service(
    service_id: uuid.UUID,
    data: ServiceUpdate,
    provider: ManagedProvider,
    session: SessionDep,
    now: NowDep,
) -> ServiceRead:
    updated = await service.update_service(
        session, provider=provider, service_id=service_id, data=data, now=now
    )
    return ServiceRead.model_validate(updated)


@router.delete(
    "/{ref}/services/{service_id}",
    response_model=ServiceRead,
    responses=responses(401, 403, 404, 409),
    summary="Deactivate a service (kept for the bookings that name it)",
)
@needs(Scope.MANAGE)
async def deactivate_service(
    service_id: uuid.UUID, provider: ManagedProvider, session: SessionDep, now: NowDep
) -> ServiceRead:
    row = await service.deactivate_service(
        session, provider=provider, service_id=service_id, now=now
    )
    return ServiceRead.model_validate(row)
