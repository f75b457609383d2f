"""Who a verified access token names: the user, unless the token was revoked or the account
can no longer sign in."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import revocation
from slotwise.auth.tokens import InvalidToken, TokenClaims
from slotwise.db import one_of, padded
from slotwise.users import repository as users_repo
from slotwise.users.models import User

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def user_for_claims(session: AsyncSession, redis: Redis | None, claims: TokenClaims) -> User:
    """The signed-in user (InvalidToken if the token or its session was revoked, or the user
    is unknown, deactivated, blocked, or issued it before the user's cutoff)."""
    if redis is not None:
        revoked = await revocation.is_revoked(
            session, redis, jti=claims.jti, session_id=claims.session_id
        )
        user = None if revoked else await users_repo.get_by_id(session, claims.user_id)
    else:  # the denylist is a table: one query asks for the user and for the token
        values = {
            "user_id": claims.user_id,
            "jti": claims.jti,
            "sid": revocation.session_key(claims.session_id),
        }
        row = (await session.execute(_USER_UNLESS_REVOKED, values)).first()
        user = None if row is None or row.revoked else row.User
    if not may_sign_in(user, claims):
        raise InvalidToken()
    return user


async def users_for_claims(
    session: AsyncSession, redis: Redis | None, many: list[TokenClaims]
) -> list[User | InvalidToken]:
    """``user_for_claims`` for many tokens at once (a batch of bookings): each token's user,
    or the refusal to answer it with. One round trip while none of the tokens is revoked."""
    if not many:
        return []
    jtis = [claims.jti for claims in many]
    sessions = [claims.session_id for claims in many]
    ids = padded(list({claims.user_id for claims in many}))
    postgresql = session.get_bind().dialect.name == "postgresql"
    if redis is not None:
        revoked = await revocation.revoked_among(session, redis, jtis, sessions)
        found_users = await session.scalars(_USERS_AMONG[postgresql], {"ids": ids})
        users = {user.id: user for user in found_users}
    else:  # the users, each row saying whether any of the tokens is on the denylist
        entries = jtis + sorted({revocation.session_key(sid) for sid in sessions})
        found = await session.execute(
            _USERS_AMONG_ANY_REVOKED[postgresql], {"ids": ids, "jtis": padded(entries)}
        )
        rows = found.all()
        users = {row.User.id: row.User for row in rows}
        any_revoked = any(row.any_revoked for row in rows)
        revoked = (
            await revocation.revoked_among(session, None, jtis, sessions) if any_revoked else set()
        )
    answers: list[User | InvalidToken] = []
    for claims in many:
        ended = revocation.session_key(claims.session_id) in revoked
        user = None if ended or claims.jti in revoked else users.get(claims.user_id)
        answers.append(user if may_sign_in(user, claims) else InvalidToken())
    return answers


def may_sign_in(user: User | None, claims: TokenClaims) -> TypeGuard[User]:
    """Does the account still accept this token?"""
    return (
        user is not None
        and user.is_active
        and not user.is_blocked
        and not predates_cutoff(user, claims)
    )


# Built once: on a signed-in request, building the statement cost more than running it.
_USER_UNLESS_REVOKED = select(
    User, revocation.listed(bindparam("jti"), bindparam("sid")).label("revoked")
).where(User.id == bindparam("user_id"))

# By dialect (True: PostgreSQL), see db.one_of.
_USERS_AMONG = {
    postgresql: select(User).where(one_of(User.id, "ids", postgresql=postgresql))
    for postgresql in (False, True)
}
_USERS_AMONG_ANY_REVOKED = {
    postgresql: select(
        User, revocation.listed_among(postgresql=postgresql).label("any_revoked")
    ).where(one_of(User.id, "ids", postgresql=postgresql))
    for postgresql in (False, True)
}


def predates_cutoff(user: User, claims: TokenClaims) -> bool:
    """A token issued before the user's cutoff (a password reset); `iat` has whole seconds."""
    cutoff = user.tokens_valid_after
    return cutoff is not None and claims.issued_at < cutoff.replace(microsecond=0)
