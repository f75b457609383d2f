from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from slotwise.apikeys.scopes import Scope, needs, session_only
from slotwise.auth.deps import AdminUser, CurrentUser, SignedInClaims
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.pagination import Page, PageParams, page_params
from slotwise.ratelimit import client_address
from slotwise.shared import SharedDep, WallClock
from slotwise.users import service
from slotwise.users.models import Role
from slotwise.users.schemas import RoleChangeRead, UserAdminUpdate, UserRead, UserSelfUpdate

router = APIRouter()


@router.get("/me", response_model=UserRead, responses=responses(401), summary="Your account")
async def read_me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.patch(
    "/me",
    response_model=UserRead,
    responses=responses(401, 403, 422, 429),
    summary="Update your name, time zone or password (a new password ends your other sessions)",
    description="A wrong `current_password` counts as a failed login of the account: past "
    "`SLOTWISE_RATE_LIMIT_LOGIN_ACCOUNT`, 429 `rate_limited`.",
)
@session_only
async def update_me(
    data: UserSelfUpdate,
    claims: SignedInClaims,
    request: Request,
    shared: SharedDep,
    now: WallClock,
) -> UserRead:
    updated = await service.update_self(
        shared.db,
        shared.hasher,
        shared.settings,
        shared.redis,
        shared.limiter,
        claims=claims,
        data=data,
        client_ip=client_address(request),
        now=now,
    )
    return UserRead.model_validate(updated)


@router.get(
    "/",
    response_model=Page[UserRead],
    responses=responses(401, 403, 422),
    summary="List users (admin)",
)
async def list_users(
    _admin: AdminUser,
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params)],
    role: Annotated[Role | None, Query(description="Only users with this role.")] = None,
) -> Page[UserRead]:
    users, total = await service.list_users(
        session, role=role, limit=page.limit, offset=page.offset
    )
    return Page[UserRead](
        items=[UserRead.model_validate(u) for u in users],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/{user_id}",
    response_model=UserRead,
    responses=responses(401, 403, 404, 422),
    summary="One user (admin)",
)
async def read_user(user_id: uuid.UUID, _admin: AdminUser, session: SessionDep) -> UserRead:
    return UserRead.model_validate(await service.get(session, user_id=user_id))


@router.patch(
    "/{user_id}",
    response_model=UserRead,
    responses=responses(401, 403, 404, 409, 422),
    summary="Change a user's role (provider or client, never admin), or deactivate or block "
    "them (admin)",
)
@needs(Scope.MANAGE)
async def update_user(
    user_id: uuid.UUID, data: UserAdminUpdate, admin: AdminUser, session: SessionDep, now: WallClock
) -> UserRead:
    updated = await service.admin_update(session, admin=admin, user_id=user_id, data=data, now=now)
    return UserRead.model_validate(updated)


@router.get(
    "/{user_id}/role-changes",
    response_model=Page[RoleChangeRead],
    responses=responses(401, 403, 404, 422),
    summary="A user's role changes, oldest first: who made each, when, from and to (admin)",
)
async def list_role_changes(
    user_id: uuid.UUID,
    _admin: AdminUser,
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[RoleChangeRead]:
    changes, total = await service.role_changes(
        session, user_id=user_id, limit=page.limit, offset=page.offset
    )
    return Page[RoleChangeRead](
        items=[RoleChangeRead.model_validate(c) for c in changes],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
