"""The pool hands out live connections: one the server closed is replaced unseen."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from slotwise.config import Settings


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
