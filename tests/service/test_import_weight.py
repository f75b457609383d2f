"""What a worker loads: the CalDAV client and what it brings (lxml, requests) only once a
CalDAV calendar is talked to, not when the app is built (`external/caldav_source.py`);
redis-py only when Redis is configured (`redis_client.py`); asyncpg only on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

LOADED = """
import sys
from slotwise.config import Settings
from slotwise.main import create_app
create_app(Settings(_env_file=None, database_url="sqlite+aiosqlite:///:memory:",
                    secret_key="k" * 64))
print(" ".join(sorted(name for name in sys.argv[1:] if name in sys.modules)))
"""

WITH_REDIS = LOADED.replace('secret_key="k" * 64', 'secret_key="k" * 64, redis_url="redis://x"')


def loaded(program: str, *names: str) -> list[str]:
    """Which of ``names`` are imported once ``program`` has built the app."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", program, *names],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.split()


def test_building_the_app_loads_no_caldav_client() -> None:
    assert loaded(LOADED, "caldav", "lxml", "requests") == []


def test_building_the_app_on_sqlite_without_redis_loads_neither_driver() -> None:
    assert loaded(LOADED, "redis", "asyncpg") == []


def test_redis_is_loaded_once_configured() -> None:
    assert loaded(WITH_REDIS, "redis", "asyncpg") == ["redis"]
