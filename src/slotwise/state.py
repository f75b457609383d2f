"""What one application instance shares across requests, reachable as a dependency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from slotwise.auth.passwords import PasswordHasher
from slotwise.auth.tokens import VerifiedAccessTokens
from slotwise.availability.slots import SlotListings
from slotwise.booking.queue import BookingQueue
from slotwise.booking.terms import TermsCache
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.ratelimit import RateLimiter


@dataclass
class AppState:
    settings: Settings
    db: Database
    hasher: PasswordHasher
    limiter: RateLimiter
    redis: Redis | None
    slots: SlotListings
    access_tokens: VerifiedAccessTokens
    terms: TermsCache
    bookings: BookingQueue

    async def aclose(self) -> None:
        """Let go of connections: the slot cache's listener, the pool, Redis (once the
        bookings under way are written)."""
        await self.bookings.aclose()
        await self.slots.aclose()
        await self.db.dispose()
        if self.redis is not None:
            await self.redis.aclose()


async def get_app_state(request: Request) -> AppState:
    state: AppState = request.app.state.slotwise
    return state


StateDep = Annotated[AppState, Depends(get_app_state)]


async def get_now() -> datetime:
    """The request's clock; tests override this dependency to control time."""
    return datetime.now(UTC)


NowDep = Annotated[datetime, Depends(get_now)]


async def wall_clock() -> datetime:
    """The real time, for tokens: PyJWT verifies them against it, so they are issued by it."""
    return datetime.now(UTC)


WallClock = Annotated[datetime, Depends(wall_clock)]
