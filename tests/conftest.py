"""Shared fixtures: every API test runs once on SQLite and once on PostgreSQL.

Each test gets a database of its own, copied from a migrated template, so tests never
share rows and never clean up after themselves by deleting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from redis import asyncio as aioredis

from slotwise import migrate
from slotwise.config import Environment, Settings
from slotwise.main import create_app

POSTGRES_URL = os.environ.get(
    "SLOTWISE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REDIS_URL = os.environ.get("SLOTWISE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"


def _dsn(url: str, database: str | None = None) -> str:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    if database is not None:
        dsn = dsn.rsplit("/", 1)[0] + "/" + database
    return dsn


def _url_for(database: str) -> str:
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + database


async def _pg_execute(sql: str) -> None:
    connection = await asyncpg.connect(_dsn(POSTGRES_URL), timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _run(coro: object) -> None:
    """Run a coroutine to completion from sync code, even inside a running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``long`` first, the rest in their order: the suite runs on every CPU
    (pytest-xdist), and a test of minutes started last would leave the other workers idle
    while it runs. Only the order changes."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def _postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        _run(_pg_execute("SELECT 1"))
    except Exception as exc:  # any failure to connect means: no server to test against
        return f"PostgreSQL at {POSTGRES_URL} does not answer ({exc.__class__.__name__}: {exc})"
    return None


async def redis_or_skip() -> str:
    """The test Redis's URL; outside CI, a skip with the reason when no Redis answers, and in
    CI a failure: there every test that uses Redis must run."""
    probe = aioredis.from_url(REDIS_URL)
    try:
        await probe.ping()
    except Exception as exc:  # any failure to connect means: no server to test against
        reason = f"Redis at {REDIS_URL} does not answer ({exc.__class__.__name__}: {exc})"
        if IN_CI:
            pytest.fail(f"CI must run the Redis tests: {reason}")
        pytest.skip(reason)
    finally:
        await probe.aclose()
    return REDIS_URL


@pytest.fixture
async def redis_url() -> str:
    return await redis_or_skip()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    reason = _postgres_available()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
        pytest.skip(reason)
    name = f"slotwise_tpl_{uuid.uuid4().hex[:12]}"
    _run(_pg_execute(f'CREATE DATABASE "{name}"'))
    try:
        # Another xdist worker may create it that moment: IF NOT EXISTS is not atomic.
        with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError):
            _run(_pg_execute("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        migrate.upgrade(_url_for(name))
        yield name
    finally:
        _run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A freshly migrated, empty database of its own for one test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "slotwise.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("postgres_template")
    name = f"slotwise_t_{uuid.uuid4().hex[:12]}"
    await _pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    try:
        yield _url_for(name)
    finally:
        await _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": Environment.TEST,
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "log_level": "WARNING",
        # Tests book as guests by the dozen from one address; tests of the limit set it.
        "rate_limit_guest_booking_ip": "100000/hour",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    yield application
    await application.state.slotwise.aclose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c
