"""Rate limits on credential endpoints (the ``limits`` library).

Memory storage by default; Redis when ``SLOTWISE_REDIS_URL`` is set, so that every worker
process shares one count.
"""

from __future__ import annotations

import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from slotwise.errors import RateLimited


class RateLimiter:
    def __init__(self, *, enabled: bool, redis_url: str | None) -> None:
        self.enabled = enabled
        storage: Storage
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            storage = RedisStorage(uri, implementation="redispy", key_prefix="slotwise-rl")
        else:
            storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, limit: str, scope: str, key: str) -> None:
        """Count one request against ``limit`` for ``scope:key``; raise when over."""
        if not self.enabled:
            return
        item = parse(limit)
        if await self._limiter.hit(item, scope, key):
            return
        stats = await self._limiter.get_window_stats(item, scope, key)
        raise RateLimited(retry_after=max(1, math.ceil(stats.reset_time - time.time())))

    async def check(self, limit: str, scope: str, key: str) -> None:
        """Raise as ``hit`` would if ``scope:key`` is at ``limit``, counting nothing."""
        if not self.enabled:
            return
        item = parse(limit)
        if await self._limiter.test(item, scope, key):
            return
        stats = await self._limiter.get_window_stats(item, scope, key)
        raise RateLimited(retry_after=max(1, math.ceil(stats.reset_time - time.time())))

    async def count(self, limit: str, scope: str, key: str) -> None:
        """Count one event against ``limit`` for ``scope:key``, without refusing anything (an
        event already answered, such as a failed login)."""
        if self.enabled:
            await self._limiter.hit(parse(limit), scope, key)
