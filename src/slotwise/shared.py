"""What every layer may reach of the running application, as dependencies: its settings,
database, password hasher, rate limiter, Redis, token verifier and API keys' last uses, and
the request's clock.

Auth and users sit below the domains: they import this, never ``state`` (which adds the
domains' own services: slot listings, kept terms, the booking writer). The app factory
builds one ``state.AppState``, which is a ``Shared``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from slotwise.apikeys.uses import KeyUses
from slotwise.auth.passwords import PasswordHasher
from slotwise.auth.reset import ResetMail
from slotwise.auth.tokens import VerifiedAccessTokens
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.ratelimit import RateLimiter

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass
class Shared:
    settings: Settings
    db: Database
    hasher: PasswordHasher
    limiter: RateLimiter
    redis: Redis | None
    access_tokens: VerifiedAccessTokens
    # How auth queues a password reset's mail (notifications.outbox.enqueue_password_reset).
    password_reset_mail: ResetMail
    # When API keys were last used, written off the requests' way.
    api_key_uses: KeyUses


async def get_shared(request: Request) -> Shared:
    shared: Shared = request.app.state.slotwise
    return shared


SharedDep = Annotated[Shared, Depends(get_shared)]


async def get_now() -> datetime:
    """The request's clock; tests override this dependency to control time."""
    return datetime.now(UTC)


NowDep = Annotated[datetime, Depends(get_now)]


async def wall_clock() -> datetime:
    """The real time, for tokens: PyJWT verifies them against it, so they are issued by it."""
    return datetime.now(UTC)


WallClock = Annotated[datetime, Depends(wall_clock)]
