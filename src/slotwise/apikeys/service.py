"""API keys' use cases: create (the key shown once), list, read, revoke; and authenticate a
request's key (``auth.deps`` calls it for a bearer token that starts with ``sw_live_``)."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.apikeys import repository
from slotwise.apikeys.models import ApiKey
from slotwise.apikeys.schemas import ApiKeyCreate
from slotwise.auth import callers, tokens
from slotwise.auth.tokens import InvalidToken, TokenClaims, TokenType
from slotwise.errors import InvalidInput, NotFound
from slotwise.users.models import Role, User

PREFIX = "sw_live_"
SHOWN_PREFIX_LENGTH = len(PREFIX) + 4
NEVER = datetime.max.replace(tzinfo=UTC)


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    message = "No such API key."


class ExpiryInPast(InvalidInput):
    code = "expiry_in_past"
    message = "An API key's expiry must be in the future."


def is_api_key(token: str) -> bool:
    """A bearer token that is an API key rather than a JWT (which never starts so)."""
    return token.startswith(PREFIX)


def new_key() -> str:
    """A key: the prefix and 256 random bits from the CSPRNG."""
    return PREFIX + secrets.token_urlsafe(32)


async def create(
    session: AsyncSession, *, user: User, data: ApiKeyCreate, now: datetime
) -> tuple[ApiKey, str]:
    """A new key of the user's: the row, and the key itself (never stored)."""
    if data.expires_at is not None and data.expires_at <= now:
        raise ExpiryInPast(details={"expires_at": data.expires_at.isoformat()})
    token = new_key()
    key = ApiKey(
        user_id=user.id,
        name=data.name,
        prefix=token[:SHOWN_PREFIX_LENGTH],
        token_hash=tokens.fingerprint(token),
        scopes=[scope.value for scope in data.scopes],
        created_at=now,
        expires_at=data.expires_at,
    )
    session.add(key)
    await session.flush()
    return key, token


async def page_for(
    session: AsyncSession, *, user: User, owner_id: uuid.UUID | None, limit: int, offset: int
) -> tuple[list[ApiKey], int]:
    """The user's keys; an admin's view: everyone's, or ``owner_id``'s."""
    if user.role is Role.ADMIN:
        return await repository.page(session, user_id=owner_id, limit=limit, offset=offset)
    if owner_id is not None and owner_id != user.id:
        return [], 0
    return await repository.page(session, user_id=user.id, limit=limit, offset=offset)


async def get_for(session: AsyncSession, *, user: User, key_id: uuid.UUID) -> ApiKey:
    """The key, if it is the user's or the user is an admin; anyone else's is not found."""
    key = await repository.get(session, key_id)
    if key is None or (key.user_id != user.id and user.role is not Role.ADMIN):
        raise ApiKeyNotFound()
    return key


async def revoke(session: AsyncSession, key: ApiKey, *, now: datetime) -> None:
    """The key stops working at once (a key revoked before stays as it was)."""
    if key.revoked_at is None:
        key.revoked_at = now
        await session.flush()


async def revoke_all(session: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> None:
    """Revoke every key of the user (a password reset does)."""
    await repository.revoke_all(session, user_id=user_id, now=now)


def claims_of(key: ApiKey) -> TokenClaims:
    """The key as a verified token's claims: whose it is, for the code that takes claims
    (the booking queue looks the owner up by them, with the same checks as a token's)."""
    return TokenClaims(
        user_id=key.user_id,
        session_id=key.id,
        jti=f"api-key:{key.id.hex}",
        expires_at=key.expires_at or NEVER,
        token_type=TokenType.ACCESS,
        issued_at=key.created_at,
        api_key_id=key.id,
    )


async def authenticate(
    session: AsyncSession, *, token: str, now: datetime
) -> tuple[ApiKey, User, TokenClaims]:
    """The key, its owner and its claims; InvalidToken (as for a bad token) if the key is
    unknown, revoked or expired, or its owner can no longer sign in."""
    found = await repository.key_and_owner(session, token_hash=tokens.fingerprint(token))
    if found is None:
        raise InvalidToken()
    key, user = found
    claims = claims_of(key)
    expired = key.expires_at is not None and key.expires_at <= now
    if key.revoked_at is not None or expired or not callers.may_sign_in(user, claims):
        raise InvalidToken()
    return key, user, claims
