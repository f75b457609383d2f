"""Use cases on accounts: read, self-service update, admin management."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import attempts
from slotwise.auth import service as auth_service
from slotwise.auth.passwords import PasswordHasher, check_policy
from slotwise.config import Settings
from slotwise.errors import Conflict, Forbidden, InvalidInput, NotFound
from slotwise.ratelimit import RateLimiter
from slotwise.users import repository
from slotwise.users.models import Role, RoleChange, User
from slotwise.users.schemas import UserAdminUpdate, UserSelfUpdate

if TYPE_CHECKING:
    from redis.asyncio import Redis


class UserNotFound(NotFound):
    code = "user_not_found"
    message = "No such user."


class CurrentPasswordIncorrect(Forbidden):
    code = "current_password_incorrect"
    message = "The current password is incorrect."


class CurrentPasswordRequired(InvalidInput):
    code = "current_password_required"
    message = "Changing the password requires current_password."


class CannotModifySelf(Conflict):
    code = "cannot_modify_self"
    message = "Admins cannot change their own role or deactivate or block themselves."


async def get(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await repository.get_by_id(session, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def update_self(
    session: AsyncSession,
    hasher: PasswordHasher,
    settings: Settings,
    redis: Redis | None,
    limiter: RateLimiter,
    *,
    user: User,
    data: UserSelfUpdate,
    current_session: uuid.UUID,
    client_ip: str,
    now: datetime,
) -> User:
    if data.full_name is not None:
        user.full_name = data.full_name
    if "timezone" in data.model_fields_set:
        user.timezone = data.timezone
    if data.new_password is not None:
        if data.current_password is None:
            raise CurrentPasswordRequired()
        if not await attempts.is_password(
            hasher,
            limiter,
            settings,
            user=user,
            password=data.current_password,
            client_ip=client_ip,
        ):
            raise CurrentPasswordIncorrect()
        check_policy(data.new_password, email=user.email)
        user.hashed_password = await hasher.hash(data.new_password)
        # End every other session at once, access tokens included; this one goes on.
        await auth_service.end_other_sessions(
            session, settings, redis, user_id=user.id, keep=current_session, now=now
        )
    user.updated_at = now
    await session.flush()
    return user


async def admin_update(
    session: AsyncSession, *, admin: User, user_id: uuid.UUID, data: UserAdminUpdate, now: datetime
) -> User:
    # Locked: two admins' changes of one role are recorded one after the other.
    user = await repository.get_for_update(session, user_id)
    if user is None:
        raise UserNotFound()
    demotes_self = data.role is not None  # the API gives no one the admin role
    if user.id == admin.id and (demotes_self or data.is_active is False or data.is_blocked):
        raise CannotModifySelf()
    if data.full_name is not None:
        user.full_name = data.full_name
    if data.role is not None and Role(data.role) is not user.role:
        session.add(
            RoleChange(
                user_id=user.id,
                changed_by_id=admin.id,
                changed_at=now,
                from_role=user.role,
                to_role=Role(data.role),
            )
        )
        # A provider no longer so stops being listed, offered and bookable at once: the
        # account's change raises its provider's rules version (migration 0009) and reaches
        # the slot caches (availability.changes). Its appointments stay.
        user.role = Role(data.role)
    if data.is_active is not None:
        user.is_active = data.is_active
    if data.is_blocked is not None:
        user.is_blocked = data.is_blocked
    if user.is_blocked or not user.is_active:
        await auth_service.revoke_user_sessions(session, user_id=user.id, now=now)
    user.updated_at = now
    await session.flush()
    return user


async def list_users(
    session: AsyncSession, *, role: Role | None, limit: int, offset: int
) -> tuple[list[User], int]:
    return await repository.list_page(session, role=role, limit=limit, offset=offset)


async def role_changes(
    session: AsyncSession, *, user_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[RoleChange], int]:
    await get(session, user_id=user_id)
    return await repository.list_role_changes(session, user_id, limit=limit, offset=offset)
