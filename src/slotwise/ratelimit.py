"""Rate limits on credential endpoints (the ``limits`` library).

Memory storage by default; Redis when ``SLOTWISE_REDIS_URL`` is set, so that every worker
process shares one count. While Redis cannot be reached the limits still hold, counted in
this process's memory (docs/operations.md, "When Redis is down").
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from slotwise import redis_client
from slotwise.errors import RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger(__name__)

# After Redis fails, count in memory this long before asking Redis again.
REDIS_RETRY_SECONDS = 5.0


class RateLimiter:
    def __init__(self, *, enabled: bool, redis: Redis | None) -> None:
        self.enabled = enabled
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        self._shared_errors: tuple[type[Exception], ...] = ()
        if redis is not None:
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix="slotwise-rl",
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            )
            self._shared = MovingWindowRateLimiter(storage)
            self._shared_errors = redis_client.errors()
        self._shared_down_until = 0.0  # time.monotonic() before which Redis is not asked

    async def hit(self, limit: str, scope: str, key: str) -> None:
        """Count one request against ``limit`` for ``scope:key``; raise when over."""
        if self.enabled:
            await self._use(self._hit, parse(limit), scope, key)

    async def check(self, limit: str, scope: str, key: str) -> None:
        """Raise as ``hit`` would if ``scope:key`` is at ``limit``, counting nothing."""
        if self.enabled:
            await self._use(self._check, parse(limit), scope, key)

    async def count(self, limit: str, scope: str, key: str) -> None:
        """Count one event against ``limit`` for ``scope:key``, without refusing anything (an
        event already answered, such as a failed login)."""
        if self.enabled:
            await self._use(self._count, parse(limit), scope, key)

    async def _use(self, operation: _Operation, item: RateLimitItem, scope: str, key: str) -> None:
        """Run the operation on Redis's counts, or on this process's while Redis is down."""
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            try:
                await operation(self._shared, item, scope, key)
            except self._shared_errors as exc:
                if self._shared_down_until == 0.0:
                    log.warning("rate_limit_redis_unavailable", error=str(exc)[:200])
                self._shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            else:
                if self._shared_down_until:
                    log.info("rate_limit_redis_restored")
                    self._shared_down_until = 0.0
                return
        await operation(self._memory, item, scope, key)

    @staticmethod
    async def _hit(
        limiter: MovingWindowRateLimiter, item: RateLimitItem, scope: str, key: str
    ) -> None:
        if not await limiter.hit(item, scope, key):
            await _refuse(limiter, item, scope, key)

    @staticmethod
    async def _check(
        limiter: MovingWindowRateLimiter, item: RateLimitItem, scope: str, key: str
    ) -> None:
        if not await limiter.test(item, scope, key):
            await _refuse(limiter, item, scope, key)

    @staticmethod
    async def _count(
        limiter: MovingWindowRateLimiter, item: RateLimitItem, scope: str, key: str
    ) -> None:
        await limiter.hit(item, scope, key)


_Operation = Callable[[MovingWindowRateLimiter, RateLimitItem, str, str], Awaitable[None]]


async def _refuse(
    limiter: MovingWindowRateLimiter, item: RateLimitItem, scope: str, key: str
) -> NoReturn:
    stats = await limiter.get_window_stats(item, scope, key)
    raise RateLimited(retry_after=max(1, math.ceil(stats.reset_time - time.time())))


def client_address(request: Request) -> str:
    """The client's address, what per-address limits count by: as uvicorn gives it, the
    peer's, or the one a trusted proxy forwarded (``--forwarded-allow-ips``;
    docs/operations.md)."""
    return request.client.host if request.client else "unknown"
