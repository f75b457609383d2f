"""Migrations: upgrade -> downgrade -> upgrade on both databases; models match the schema."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from slotwise import migrate
from slotwise.db import make_engine
from slotwise.models import Base


def _in_thread(fn: object, *args: object) -> object:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()  # type: ignore[arg-type]


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return names - {"alembic_version"}


async def _diff(url: str) -> list[object]:
    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_round_trip_and_models_match(database_url: str) -> None:
    # database_url arrives migrated to head.
    assert await _tables(database_url) == set(Base.metadata.tables)
    assert await _diff(database_url) == []
    await asyncio.to_thread(migrate.downgrade, database_url, "base")
    assert await _tables(database_url) == set()
    await asyncio.to_thread(migrate.upgrade, database_url, "head")
    assert await _tables(database_url) == set(Base.metadata.tables)
    assert await _diff(database_url) == []
