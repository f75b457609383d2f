"""The pool hands out live connections: one the server closed is replaced unseen."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Column, MetaData, Table, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from slotwise.config import Settings
from slotwise.db.types import UTCDateTime


async def _pooled_backends(settings: Settings) -> int:
    """End every other session of the test database (the app's pool), as a restart would;
    the number ended."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            ended = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                )
            )
    finally:
        await engine.dispose()
    return int(ended or 0)


async def test_a_connection_the_server_closed_is_replaced_before_use(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    if app.state.slotwise.db.is_sqlite:
        pytest.skip("PostgreSQL's connections; SQLite has none to lose")
    pool = app.state.slotwise.db.engine.pool
    assert (await client.get("/providers")).status_code == 200
    assert pool.checkedin() >= 1  # a pooled connection, idle
    assert await _pooled_backends(settings) >= 1
    await asyncio.sleep(0.2)  # the driver reads the server's goodbye

    # No ping on the way (pool_pre_ping is off): without the checkout check this request
    # would get the dead connection and answer 503 database_unavailable.
    after = await client.get("/providers")
    assert after.status_code == 200, after.text


async def test_instants_read_back_in_utc_whatever_the_session_time_zone(app: FastAPI) -> None:
    """An instant column reads back as an aware datetime in UTC (``db.types.UTCDateTime``),
    written in any zone; on PostgreSQL also when the session's TimeZone is not UTC (asyncpg
    then returns the value unprocessed, and the type relies on it)."""
    engine = app.state.slotwise.db.engine
    table = Table("instants", MetaData(), Column("at", UTCDateTime(), primary_key=True))
    written = datetime(2026, 3, 8, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    async with engine.begin() as connection:
        await connection.run_sync(table.create)
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL TimeZone = 'Asia/Kathmandu'"))
        await connection.execute(table.insert().values(at=written))
        read = (await connection.execute(select(table.c.at))).scalar_one()
        await connection.run_sync(table.drop)
    assert read == written
    assert read.tzinfo is UTC
