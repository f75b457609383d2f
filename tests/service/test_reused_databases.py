"""The tests' PostgreSQL databases are reused (tests/conftest.py: `Databases`): a database is
given to the next test only as the template left it, empty, with its sequences restarted, and
one whose schema a test changed is dropped instead."""

from __future__ import annotations

import asyncpg

from tests.conftest import POSTGRES_URL, Databases, _dsn


async def _connect(name: str) -> asyncpg.Connection:
    return await asyncpg.connect(_dsn(POSTGRES_URL, name))


async def _exists(name: str) -> bool:
    connection = await asyncpg.connect(_dsn(POSTGRES_URL))
    try:
        found = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        return found is not None
    finally:
        await connection.close()


async def test_an_emptied_database_comes_back_as_the_template_left_it(
    postgres_databases: Databases,
) -> None:
    name = await postgres_databases.take()
    connection = await _connect(name)
    try:
        for reference in ("9b0f7c2e-0000-4000-8000-000000000001",) * 3:
            await connection.execute(
                "INSERT INTO schedule_changes (ref) VALUES ($1::uuid)", reference
            )
        held = await _connect(name)  # a session the test left open: it is ended
    finally:
        await connection.close()
    await postgres_databases.give_back(name)

    assert held.is_closed() or await _closed(held)
    assert await postgres_databases.take() == name
    connection = await _connect(name)
    try:
        assert await connection.fetchval("SELECT count(*) FROM schedule_changes") == 0
        first = await connection.fetchval(
            "INSERT INTO schedule_changes (ref) VALUES ($1::uuid) RETURNING seq",
            "9b0f7c2e-0000-4000-8000-000000000002",
        )
        assert first == 1  # the sequence restarted
        assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 1
    finally:
        await connection.close()
    await postgres_databases.give_back(name)


async def _closed(connection: asyncpg.Connection) -> bool:
    try:
        await connection.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError):
        return True
    finally:
        await connection.close()
    return False


async def test_a_database_whose_schema_a_test_changed_is_dropped(
    postgres_databases: Databases,
) -> None:
    name = await postgres_databases.take()
    connection = await _connect(name)
    try:
        await connection.execute("ALTER TABLE appointments DISABLE TRIGGER USER")
    finally:
        await connection.close()
    await postgres_databases.give_back(name)

    assert not await _exists(name)
    other = await postgres_databases.take()
    assert other != name
    await postgres_databases.give_back(other)
