"""Who is calling: dependencies that authenticate and authorize a request.

A bearer token is a session's access token (a JWT) or an API key (``sw_live_…``, told apart
by that prefix, so a JWT costs nothing more than before). Both come through here, so every
route that reads its caller takes keys, with the checks of ``_key_caller``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.base import SecurityBase
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.apikeys import scopes
from slotwise.apikeys import service as api_keys
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
    if api_keys.is_api_key(token):
        user, claims = await _key_caller(request, session, shared, token)
    else:
        user, claims = await service.user_for_access_token(
            session, shared.access_tokens, shared.redis, token=token
        )
    request.state.token_claims = claims
    return user


async def _key_caller(
    request: Request, session: AsyncSession, shared: Shared, token: str
) -> tuple[User, TokenClaims]:
    """An API key's owner, if the key is good (else 401 as for a bad token), within its own
    rate limit (429) and with the scope the route needs (403, ``apikeys.scopes``)."""
    now = datetime.now(UTC)  # keys live in real time, as tokens do
    key, user, claims = await api_keys.authenticate(session, token=token, now=now)
    await shared.limiter.hit(shared.settings.rate_limit_api_key, "api-key", str(key.id))
    endpoint = getattr(request.scope.get("route"), "endpoint", None)
    if endpoint is None:  # not a route of the application: nothing declares a scope
        raise scopes.SessionRequired()
    scopes.check(key.scopes, endpoint, request.method)
    shared.api_key_uses.note(key, now=now)
    return user, claims


class _BearerClaims(SecurityBase):
    """A signed-in caller's verified token (signature, expiry, type), or None for an
    anonymous one; the user it names is not looked up (a bad token is still 401). An API
    key is: its claims come back once the key, its rate limit and its scope are checked.

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
        if api_keys.is_api_key(token):  # a key is looked up: a short read of its own
            async with shared.db.transaction(writes=False) as session:
                _user, claims = await _key_caller(request, session, shared, token)
            return claims
        return shared.access_tokens.claims(token, now=datetime.now(UTC))


optional_claims = _BearerClaims(bearer)


async def signed_in_claims(
    claims: Annotated[TokenClaims | None, Depends(optional_claims)],
) -> TokenClaims:
    """A signed-in caller's verified token, its user not looked up (a route that looks its
    caller up later, or in a batch): an anonymous caller is 401 before the request's
    parameters and body are read, as on every route that needs a caller."""
    if claims is None:
        raise Unauthorized()
    return claims


def reads_token(dependant: Dependant) -> bool:
    """Does a route (its dependant) read the caller's bearer token, even optionally?"""
    reads = dependant.call is bearer or dependant.call is optional_claims
    return reads or any(reads_token(d) for d in dependant.dependencies)


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
SignedInClaims = Annotated[TokenClaims, Depends(signed_in_claims)]
CurrentUser = Annotated[User, Depends(current_user)]
CurrentClaims = Annotated[TokenClaims, Depends(token_claims)]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]
