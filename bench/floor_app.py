"""The floor for the booking benchmark: a bare FastAPI app that does one INSERT per request.

Served like Slotwise (one uvicorn worker), on the same database with the same engine
settings (`slotwise.db.make_engine`: WAL and BEGIN IMMEDIATE on SQLite, the same pool on
PostgreSQL), it shows what one write transaction per request costs on this machine with
nothing else around it: no auth, no checks, no middleware, no history row.

    SLOTWISE_DATABASE_URL=... uv run uvicorn floor_app:app_factory --factory --app-dir bench

Routes: ``GET /ping`` (trivial, no database: the load client's ceiling on uvicorn) and
``POST /floor/insert`` (a JSON body like a booking's; one row inserted, 201 with its id).
The ``bench_floor_rows`` table is created at start-up if missing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, MetaData, String, Table, Uuid, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from slotwise.db import make_engine

metadata = MetaData()
rows = Table(
    "bench_floor_rows",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("provider_id", Uuid(), nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("client_key", String(320), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class FloorCreate(BaseModel):
    provider_id: uuid.UUID
    start_datetime: datetime


class FloorCreated(BaseModel):
    id: uuid.UUID


def create_floor_app(database_url: str) -> FastAPI:
    engine: AsyncEngine = make_engine(database_url)
    sqlite = engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ping", response_class=PlainTextResponse)
    async def ping() -> str:
        return "ok"

    @app.post("/floor/insert", status_code=status.HTTP_201_CREATED)
    async def insert_row(data: FloorCreate) -> FloorCreated:
        row_id = uuid.uuid4()
        start_at = data.start_datetime.astimezone(UTC)
        async with engine.connect() as connection:
            if sqlite:  # the write lock up front, as Slotwise's booking transaction takes it
                await connection.execution_options(sqlite_immediate=True)
            async with connection.begin():
                await connection.execute(
                    insert(rows).values(
                        id=row_id,
                        provider_id=data.provider_id,
                        start_at=start_at.replace(tzinfo=None) if sqlite else start_at,
                        client_key="floor@example.com",
                        created_at=datetime.now(UTC),
                    )
                )
        return FloorCreated(id=row_id)

    return app


def app_factory() -> FastAPI:
    return create_floor_app(os.environ["SLOTWISE_DATABASE_URL"])
