"""``/api-keys``: a provider's or an admin's keys for integrations. Every route here needs a
signed-in session: a key cannot make, list or revoke keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from slotwise.apikeys import service
from slotwise.apikeys.models import ApiKey
from slotwise.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from slotwise.apikeys.scopes import session_only
from slotwise.auth.deps import require_role
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.pagination import Page, PageParams, page_params
from slotwise.shared import WallClock
from slotwise.users.models import Role, User

router = APIRouter()

KeyOwner = Annotated[User, Depends(require_role(Role.PROVIDER, Role.ADMIN))]


async def owned_key(key_id: uuid.UUID, user: KeyOwner, session: SessionDep) -> ApiKey:
    """The key in the path, if the caller owns it or is an admin (else 404)."""
    return await service.get_for(session, user=user, key_id=key_id)


OwnedKey = Annotated[ApiKey, Depends(owned_key)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=responses(401, 403, 422),
    summary="Create an API key (the key is shown once)",
)
@session_only
async def create_api_key(
    data: ApiKeyCreate, user: KeyOwner, session: SessionDep, now: WallClock
) -> ApiKeyCreated:
    key, token = await service.create(session, user=user, data=data, now=now)
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=token)


@router.get(
    "",
    response_model=Page[ApiKeyRead],
    responses=responses(401, 403),
    summary="Your API keys, newest first, revoked ones too (an admin: everyone's)",
)
@session_only
async def list_api_keys(
    user: KeyOwner,
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params)],
    user_id: Annotated[
        uuid.UUID | None, Query(description="Only this account's keys (for an admin).")
    ] = None,
) -> Page[ApiKeyRead]:
    keys, total = await service.page_for(
        session, user=user, owner_id=user_id, limit=page.limit, offset=page.offset
    )
    return Page[ApiKeyRead](
        items=[ApiKeyRead.model_validate(key) for key in keys],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/{key_id}",
    response_model=ApiKeyRead,
    responses=responses(401, 403, 404),
    summary="One API key",
)
@session_only
async def get_api_key(key: OwnedKey) -> ApiKey:
    return key


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Revoke an API key: it stops working at once",
)
@session_only
async def revoke_api_key(key: OwnedKey, session: SessionDep, now: WallClock) -> None:
    await service.revoke(session, key, now=now)
