"""Shared fixtures: every API test runs once on SQLite and once on PostgreSQL.

Each test gets a database of its own, as the migrated template is, so tests never share rows
and never clean up after themselves: on SQLite a copy of the template's file; on PostgreSQL a
copy of the template database, or one an earlier test of the same worker used, emptied once it
finished and given on only if its schema is still the template's (`Databases`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from redis import asyncio as aioredis
from starlette.routing import BaseRoute

from slotwise import migrate
from slotwise.config import Environment, Settings
from slotwise.main import create_app
from slotwise.state import get_now

POSTGRES_URL = os.environ.get(
    "SLOTWISE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REDIS_URL = os.environ.get("SLOTWISE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
T = TypeVar("T")
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


def _run(coro: Coroutine[object, object, T]) -> T:
    """A coroutine's value, from sync code, even inside a running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


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


# What a test could change in a database beyond its rows: if any of it differs from the
# template's after a test, its database is not reused.
SCHEMA_FINGERPRINT = """
SELECT md5(concat_ws(' | ',
  (SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version),
  (SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace),
  (SELECT string_agg(c.relname || ':' || c.relkind::text, ',' ORDER BY c.relname)
     FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace),
  (SELECT string_agg(c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
                     || ':' || a.attnotnull || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
                     ',' ORDER BY c.relname, a.attnum)
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT string_agg(indexname || ':' || indexdef, ',' ORDER BY indexname)
     FROM pg_indexes WHERE schemaname = 'public'),
  (SELECT string_agg(conrelid::regclass::text || '.' || conname || ':'
                     || pg_get_constraintdef(oid), ',' ORDER BY 1)
     FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
  (SELECT string_agg(tgrelid::regclass::text || '.' || tgname || ':' || tgenabled::text || ':'
                     || pg_get_triggerdef(oid), ',' ORDER BY 1)
     FROM pg_trigger WHERE NOT tgisinternal),
  (SELECT string_agg(oid::regprocedure::text || ':' || md5(coalesce(prosrc, '')), ','
                     ORDER BY 1)
     FROM pg_proc WHERE pronamespace = 'public'::regnamespace),
  (SELECT string_agg(extname || ':' || extversion, ',' ORDER BY extname) FROM pg_extension),
  (SELECT string_agg(array_to_string(setconfig, ';'), ',') FROM pg_db_role_setting
     WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())),
  (SELECT string_agg(tablename || '.' || policyname, ',') FROM pg_policies)
))
"""
# Every table's rows deleted, with triggers silenced, and every sequence restarted; the
# number of rows deleted is left in the setting test.deleted.
EMPTY = """
SET LOCAL session_replication_role = replica;
DO $$
DECLARE
  name text;
  counted bigint;
  deleted bigint := 0;
BEGIN
  FOR name IN SELECT tablename FROM pg_tables
              WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
    EXECUTE format('DELETE FROM %I', name);
    GET DIAGNOSTICS counted = ROW_COUNT;
    deleted := deleted + counted;
  END LOOP;
  FOR name IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' LOOP
    EXECUTE format('ALTER SEQUENCE %I RESTART', name);
  END LOOP;
  PERFORM set_config('test.deleted', deleted::text, true);
END
$$;
"""
REUSE_AT_MOST_ROWS = 20_000  # a database a test filled beyond this is dropped, not emptied


class Databases:
    """PostgreSQL databases for the tests of one xdist worker: copies of the migrated
    template, each emptied after its test and given to the next one.

    Copying the template and dropping the copy cost the server a tenth of a second to a
    second each (files written and synced), often more than a short test itself; emptying a
    database costs a few milliseconds. A database is emptied (every table's rows deleted,
    with its triggers silenced, and its sequences restarted) only if its test left the rest
    as the template's (`SCHEMA_FINGERPRINT`) and did not fill it beyond
    `REUSE_AT_MOST_ROWS`; otherwise it is dropped and the next test gets a new copy. Every
    other session on it is ended first (its advisory locks, listeners and prepared
    statements go with it), as dropping it did."""

    def __init__(self, template: str, fingerprint: str) -> None:
        self.template = template
        self._fingerprint = fingerprint
        self._free: list[str] = []

    async def take(self) -> str:
        if self._free:
            return self._free.pop()
        name = f"slotwise_t_{uuid.uuid4().hex[:12]}"
        await _pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    async def give_back(self, name: str) -> None:
        if await self._emptied(name):
            self._free.append(name)
        else:
            await _pg_execute(_drop(name))

    async def close(self) -> None:
        for name in self._free:
            await _pg_execute(_drop(name))
        self._free.clear()

    async def _emptied(self, name: str) -> bool:
        """Whether the database was emptied for the next test (else it is to be dropped)."""
        connection = await asyncpg.connect(_dsn(POSTGRES_URL, name), timeout=5)
        try:
            # Each other session ended, and gone, before anything is read (5 s at most).
            await connection.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if await connection.fetchval(SCHEMA_FINGERPRINT) != self._fingerprint:
                return False
            async with connection.transaction():
                await connection.execute(EMPTY)
                deleted = int(await connection.fetchval("SELECT current_setting('test.deleted')"))
            return deleted <= REUSE_AT_MOST_ROWS
        except asyncpg.PostgresError:  # not allowed to (not a superuser), or a session held on
            return False
        finally:
            await connection.close()


async def _fingerprint(name: str) -> str:
    connection = await asyncpg.connect(_dsn(POSTGRES_URL, name), timeout=5)
    try:
        fingerprint: str = await connection.fetchval(SCHEMA_FINGERPRINT)
        return fingerprint
    finally:
        await connection.close()


def _drop(name: str) -> str:
    return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Databases]:
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
        databases = Databases(name, _run(_fingerprint(name)))
        try:
            yield databases
        finally:
            _run(databases.close())
    finally:
        _run(_pg_execute(_drop(name)))


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database of its own for one test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "slotwise.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    databases: Databases = request.getfixturevalue("postgres_databases")
    name = await databases.take()
    try:
        yield _url_for(name)
    finally:
        await databases.give_back(name)


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


# The routes of the first application a test worker built, and that application: every later
# one takes them (see app_for).
_BUILT: list[tuple[list[BaseRoute], FastAPI]] = []


def app_for(settings: Settings) -> FastAPI:
    """``create_app(settings)``, with the routes of the first application this test worker
    built in place of its own.

    FastAPI builds an included router's routes (dependants, fields, validators) for each
    application, the first time a request looks through the router: most of an API test's
    time, for routes that are the same in every application ``create_app`` makes (they do
    not depend on settings). Given the first application's routes, an application finds them
    built. Those routes look up dependency overrides in the first application's
    ``dependency_overrides``, so every application shares that dictionary; ``closed``
    empties it after each test (one application a test, then: a test that needs a second
    one, as another worker, builds it with ``create_app``). An application built another way
    (another class, app-level dependencies) keeps its own routes."""
    application = create_app(settings)
    if type(application) is not FastAPI or application.router.dependencies:
        return application
    if not _BUILT:
        _BUILT.append((list(application.router.routes), application))
        return application
    routes, first = _BUILT[0]
    assert len(routes) == len(application.router.routes), "create_app's routes changed"
    # A list of its own (a route a test adds stays its application's), of the same routes.
    application.router.routes = list(routes)
    application.dependency_overrides = first.dependency_overrides
    return application


async def closed(application: FastAPI) -> None:
    """A test's application closed, and the dependency overrides it set forgotten."""
    application.dependency_overrides.clear()
    await application.state.slotwise.aclose()


@contextlib.asynccontextmanager
async def served(
    database_url: str,
    clock: Callable[[], datetime],
    address: str = "203.0.113.7",
    **settings: object,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An application of its own with these settings (beside the test's ``app``, so built
    by ``create_app``: see ``app_for``), its clock ``clock``, and a client calling from
    ``address``."""
    application = create_app(make_settings(database_url, **settings))
    application.dependency_overrides[get_now] = clock
    try:
        transport = httpx.ASGITransport(app=application, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
            yield application, c
    finally:
        await application.state.slotwise.aclose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = app_for(settings)
    yield application
    await closed(application)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c
