"""The one Redis client an application shares (rate limits, the access-token denylist).

Short timeouts and a single immediate retry: a Redis that is down or unreachable costs a
request at most two timeouts, never redis-py's default of ten retries of five seconds.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

# What a Redis call raises when Redis is down, unreachable or too slow.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)


def connect(url: str, *, timeout_seconds: float) -> Redis:
    """A client (and its pool; nothing connects until the first command)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        # One retry at once: a pooled connection that Redis closed (a restart) is replaced.
        retry=Retry(NoBackoff(), retries=1),
    )
