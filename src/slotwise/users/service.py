"""Use cases on accounts: read, self-service update, admin management."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import attempts, callers
from slotwise.auth import service as auth_service
from slotwise.auth.passwords import PasswordHasher, check_policy
from slotwise.auth.tokens import InvalidToken, TokenClaims
from slotwise.config import Settings
from slotwise.db import Database
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
    database: Database,
    hasher: PasswordHasher,
    settings: Settings,
    redis: Redis | None,
    limiter: RateLimiter,
    *,
    claims: TokenClaims,
    data: UserSelfUpdate,
    client_ip: str,
    now: datetime,
) -> User:
    """The signed-in user's own change, committed. A new password's checks (the current
    one, then the hash of the new) run outside any transaction (``auth.service.
    authenticate`` says why), between a read of the account and the transaction that
    writes the change, which reads it again with its row locked: a password changed
    meanwhile makes the current one given here no longer current (403)."""
    async with database.transaction(writes=False) as session:
        user = await callers.user_for_claims(session, redis, claims)
    hashed_password = None
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
        hashed_password = await hasher.hash(data.new_password)
    async with database.transaction(writes=True) as session:
        current = await repository.get_for_update(session, user.id)
        if not callers.may_sign_in(current, claims):
            raise InvalidToken()
        if data.full_name is not None:
            current.full_name = data.full_name
        if "timezone" in data.model_fields_set:
            current.timezone = data.timezone
        if hashed_password is not None:
            if current.hashed_password != user.hashed_password:
                raise CurrentPasswordIncorrect()
            current.hashed_password = hashed_password
            # End every other session at once, access tokens included; this one goes on.
            await auth_service.end_other_sessions(
                session, settings, redis, user_id=current.id, keep=claims.session_id, now=now
            )
        current.updated_at = now
        await session.flush()
    return current


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
