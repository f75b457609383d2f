"""Who is calling: dependencies that authenticate and authorize a request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.base import SecurityBase

from slotwise.auth import service
from slotwise.auth.tokens import TokenClaims
from slotwise.db import SessionDep
from slotwise.errors import Forbidden, Unauthorized
from slotwise.shared import Shared, SharedDep
from slotwise.users.models import Role, User

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


async def optional_user(
    request: Request,
    session: SessionDep,
    shared: SharedDep,
    token: Annotated[str | None, Depends(bearer)],
) -> User | None:
    """The signed-in user, or None for an anonymous caller (a bad token is still 401)."""
    if token is None:
        return None
    user, claims = await service.user_for_access_token(
        session, shared.access_tokens, shared.redis, token=token
    )
    request.state.token_claims = claims
    return user


class _BearerClaims(SecurityBase):
    """A signed-in caller's verified token (signature, expiry, type), or None for an
    anonymous one; the user it names is not looked up (a bad token is still 401).

    The token is read as `bearer` reads it, and this is `bearer`'s security scheme in the
    OpenAPI document: one dependency for FastAPI to solve on the booking route, not two."""

    def __init__(self, scheme: OAuth2PasswordBearer) -> None:
        self.scheme = scheme
        self.model = scheme.model
        self.scheme_name = scheme.scheme_name

    async def __call__(self, request: Request) -> TokenClaims | None:
        token = await self.scheme(request)
        if token is None:
            return None
        shared: Shared = request.app.state.slotwise
        return shared.access_tokens.claims(token, now=datetime.now(UTC))


optional_claims = _BearerClaims(bearer)


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise Unauthorized()
    return user


def token_claims(request: Request, _user: Annotated[User, Depends(current_user)]) -> TokenClaims:
    claims: TokenClaims = request.state.token_claims
    return claims


def require_role(*roles: Role) -> Callable[[User], Awaitable[User]]:
    async def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in roles:
            raise Forbidden(f"This requires the role: {' or '.join(r.value for r in roles)}.")
        return user

    return check


OptionalUser = Annotated[User | None, Depends(optional_user)]
OptionalClaims = Annotated[TokenClaims | None, Depends(optional_claims)]
CurrentUser = Annotated[User, Depends(current_user)]
CurrentClaims = Annotated[TokenClaims, Depends(token_claims)]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]
