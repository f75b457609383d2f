"""The one Redis client an application shares (rate limits, the access-token denylist).

Short timeouts and a single immediate retry: a Redis that is down or unreachable costs a
request at most two timeouts, never redis-py's default of ten retries of five seconds.

redis-py is loaded here, and only when Redis is configured: importing it costs a worker
about 14 MB, and the embedded default runs without Redis. Elsewhere its types are named for
the type checker only (tests/service/test_import_weight.py checks that building the app
without Redis loads none of it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis


def connect(url: str, *, timeout_seconds: float) -> Redis:
    """A client (and its pool; nothing connects until the first command)."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Redis.from_url(
        url,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        # One retry at once: a pooled connection that Redis closed (a restart) is replaced.
        retry=Retry(NoBackoff(), retries=1),
    )


def error_class() -> type[Exception]:
    """redis-py's own errors' base class."""
    from redis.exceptions import RedisError

    return RedisError


def errors() -> tuple[type[Exception], ...]:
    """What a Redis call raises when Redis is down, unreachable or too slow."""
    return (error_class(), OSError)
