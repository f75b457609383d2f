"""Engine, sessions and column types; every SQLite/PostgreSQL difference lives here."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Request
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    TextClause,
    any_,
    bindparam,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY as postgresql_array
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    QueryableAttribute,
    class_mapper,
    mapped_column,
)
from sqlalchemy.types import TypeDecorator, Uuid

from slotwise.errors import AppError

T = TypeVar("T")
M = TypeVar("M", bound="Base")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: stored in UTC, always read back timezone-aware.

    SQLite has no time zone type, so values are normalised to UTC before they are written;
    comparisons in SQL then order correctly on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for an instant column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """On SQLite, the stored text straight to an aware instant in one C call: a month's
        busy time is thousands of values, and parse-then-replace costs five times as much."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        fallback = super().result_processor(dialect, coltype)

        def process(value: object) -> datetime | None:
            if isinstance(value, str):
                try:
                    return datetime.fromisoformat(value + "+00:00")  # stored as naive UTC
                except ValueError:
                    pass  # written with an offset by another tool: the general path
            result: datetime | None = fallback(value) if fallback else value  # type: ignore[assignment]
            return result

        return process


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements (typed: ``__table__`` is a FromClause to mypy)."""
    return cast(Table, model.__table__)


def unsaved(model: type[M], **values: Any) -> M:
    """A model instance to read from, for a row written with a Core INSERT: its attributes
    set without the ORM's change tracking, at a tenth of the constructor's cost. Never to be
    added to a session (it would not know what to write); every attribute read must be
    given, relationships as plain lists."""
    instance: M = class_mapper(model).class_manager.new_instance()
    instance.__dict__.update(values)
    return instance


def padded(values: list[T]) -> list[T]:
    """``values``, the last repeated up to a power of two (up to 8) or a multiple of 8. A
    statement whose text depends on a count (an expanding IN, a set of columns per item) is
    then built, cached and prepared by the driver for a dozen counts (1, 2, 4, 8, 16, 24 ...
    64) rather than each, and the database does at most 7 lookups more than asked."""
    count = len(values)
    if count == 0:
        return values
    size = 1 << (count - 1).bit_length() if count <= 8 else -(-count // 8) * 8
    return values + [values[-1]] * (size - count)


def one_of(column: QueryableAttribute[Any], name: str, *, postgresql: bool) -> ColumnElement[bool]:
    """``column`` is one of the values of the list bound as ``name``. On PostgreSQL
    ``= ANY(array)``: one statement text however long the list. Elsewhere an expanding IN,
    whose text SQLAlchemy rewrites for each execution (``padded`` keeps the lengths few)."""
    if postgresql:
        return column == any_(bindparam(name, type_=postgresql_array(column.type)))
    return column.in_(bindparam(name, expanding=True))


async def insert_rows(
    session: AsyncSession, tables: list[tuple[Table, list[dict[str, Any]]]]
) -> None:
    """Rows into several tables, in the order given (a row's parents before it), in the
    session's transaction. On PostgreSQL one statement: the tables' INSERTs as
    data-modifying CTEs, each row set sent as one array per column and unnested (one round
    trip, one execution, rather than a statement per table and an execution per row);
    foreign keys are checked at the statement's end. Elsewhere one INSERT per table."""
    tables = [(table, rows) for table, rows in tables if rows]
    if not tables:
        return
    connection = await session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        for table, rows in tables:
            await connection.execute(table.insert(), rows)
        return
    shape = tuple((table.name, tuple(rows[0])) for table, rows in tables)
    statement, parts = _unnested_insert(shape)
    values: dict[str, list[Any]] = {}
    for part, (_table, rows) in zip(parts, tables, strict=True):
        values.update(part.values(dialect, rows))
    await connection.execute(statement, values)


@dataclass(frozen=True, slots=True)
class Unnested:
    """Rows of one table sent to PostgreSQL as one array parameter per column, to be read
    back as rows with ``unnest``: one statement text and one execution however many rows."""

    columns: str  # the quoted column names, comma-separated, in the arrays' order
    arrays: str  # the array parameters, comma-separated: the arguments of unnest(...)
    parameters: tuple[tuple[str, Column[Any]], ...]  # (name, column), in that order

    def values(self, dialect: Dialect, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """The parameters' values for these rows (each row has every key of the shape)."""
        values: dict[str, list[Any]] = {}
        for name, column in self.parameters:
            key = column.key
            process = column.type.bind_processor(dialect)
            values[name] = (
                [process(row[key]) for row in rows] if process else [row[key] for row in rows]
            )
        return values


@lru_cache(maxsize=64)
def unnested(table_name: str, keys: tuple[str, ...], prefix: str) -> Unnested:
    """The arrays for rows of this table with these keys, their parameters named
    ``{prefix}_{key}``. Names come from the models' metadata, never from input."""
    table = Base.metadata.tables[table_name]
    names, arrays, parameters = [], [], []
    for key in keys:
        column = table.columns[key]
        name = f"{prefix}_{key}"
        names.append(f'"{column.name}"')
        arrays.append(f"CAST(:{name} AS {_array_type(column)}[])")
        parameters.append((name, column))
    return Unnested(", ".join(names), ", ".join(arrays), tuple(parameters))


@lru_cache(maxsize=64)
def _unnested_insert(
    shape: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[TextClause, list[Unnested]]:
    """The PostgreSQL statement for rows of these tables and keys, built once per shape, and
    each table's arrays, in the order of ``shape``."""
    parts = [unnested(name, keys, f"t{number}") for number, (name, keys) in enumerate(shape)]
    # Table and column names from the models' metadata, never from input.
    inserts = [
        f'INSERT INTO "{name}" ({part.columns}) SELECT * FROM unnest({part.arrays})'  # noqa: S608
        for (name, _keys), part in zip(shape, parts, strict=True)
    ]
    *first, last = inserts
    with_clause = ", ".join(f"t{number} AS ({part})" for number, part in enumerate(first))
    return text(f"WITH {with_clause} {last}" if first else last), parts


def _array_type(column: Column[Any]) -> str:
    """The PostgreSQL element type an array parameter of this column is sent as (lengths
    left to the column itself, so that a value too long is refused, not cut)."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "timestamptz"
    if isinstance(kind, Uuid):
        return "uuid"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, JSON):
        return "json"
    if isinstance(kind, String):  # Text and (non-native) Enum included
        return "text"
    raise TypeError(f"no array type for {column}")


def insert_ignoring_duplicates(session: AsyncSession, model: type[Base]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the session's own dialect."""
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        return sqlite_insert(model).on_conflict_do_nothing()
    return postgresql_insert(model).on_conflict_do_nothing()


def utcnow() -> datetime:
    return datetime.now(UTC)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _configure_sqlite(engine: AsyncEngine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver so that we emit it ourselves (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers ask for BEGIN IMMEDIATE: SQLite then takes the write lock at the start,
        # so their check-then-write cannot interleave (see get_session).
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def make_engine(url: str, *, pool_size: int = 10, foreign_keys: bool = True) -> AsyncEngine:
    """``foreign_keys=False`` is for migrations only: SQLite's batch mode recreates a table,
    and dropping a referenced table with foreign keys on would cascade into its children."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine, foreign_keys=foreign_keys)
        return engine
    # A fixed pool: overflow connections are closed when handed back, so under steady
    # concurrency above pool_size they are opened again and again (connection set-up and
    # statement preparation each time). Requests beyond pool_size wait for a connection.
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
    event.listen(engine.sync_engine, "checkout", _discard_if_closed)
    return engine


def _discard_if_closed(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """The pool's liveness check, without a round trip: a pooled connection the server
    closed (a restart, an administrator's pg_terminate_backend) is known to the driver as
    soon as the event loop has read its end, and is replaced before anyone uses it.

    SQLAlchemy's ``pool_pre_ping`` asks the server instead, at every checkout: with asyncpg
    three round trips (BEGIN, an empty query, ROLLBACK), a large share of a booking's cost
    in the worker (measured in docs/benchmarks.md). A connection cut without a word (a
    network partition) still fails its first statement: 503 database_unavailable, and the
    pool drops it."""
    is_closed = getattr(record.driver_connection, "is_closed", None)  # asyncpg's
    if is_closed is not None and is_closed():
        raise DisconnectionError()


class Database:
    """The engine and session factory of one application instance."""

    def __init__(
        self, url: str, *, pool_size: int = 10, session_info: dict[str, Any] | None = None
    ) -> None:
        """``session_info`` is given to every session (``session.info``): application-wide
        values that domain code reads without taking settings, e.g. the reminder offsets."""
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        info = dict(session_info or {})
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._write_sessionmaker = self.sessionmaker
        self._autocommit_sessionmaker = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
            info=info,
        )
        # SQLite admits one writer. Within a process, writers queue on this lock and are
        # woken the moment it is free, instead of polling in SQLite's busy handler (which
        # sleeps up to 100 ms a try); across processes the busy handler still arbitrates.
        self.write_lock: asyncio.Lock | None = None
        if self.is_sqlite:
            self.write_lock = asyncio.Lock()
            immediate = self.engine.execution_options(sqlite_immediate=True)
            self._write_sessionmaker = async_sessionmaker(
                immediate, expire_on_commit=False, info=info
            )

    def session(self, *, writes: bool) -> AsyncSession:
        """A new session; on SQLite, ``writes`` makes its transactions BEGIN IMMEDIATE."""
        return (self._write_sessionmaker if writes else self.sessionmaker)()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self, *, writes: bool) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed when the block succeeds and rolled back when
        it raises (an ``AppError`` that keeps its changes is committed, then raised).

        On SQLite a writing transaction runs as BEGIN IMMEDIATE (begun at its first
        statement) under this process's write lock: it takes the lock before it reads, so
        a check and the write that follows cannot interleave with another writer, and a
        reader turned writer never meets a stale snapshot. PostgreSQL needs nothing of the
        kind: its constraints and row locks hold the invariants.
        """
        lock = self.write_lock if writes else None
        async with _held(lock), self.session(writes=writes) as session:
            try:
                yield session
                await session.commit()
            except AppError as error:
                await (session.commit() if error.keep_changes else session.rollback())
                raise
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncSession]:
        """A session on PostgreSQL in which every statement is a transaction of its own: no
        BEGIN and no COMMIT to wait for, for work whose writes are one statement (the
        booking batch's, ``booking.group``). Reads are as in a READ COMMITTED transaction,
        where each statement sees what was committed when it started. The session's commit
        at the end writes nothing; it reports this process's changes to the slot cache."""
        if self.is_sqlite:
            raise RuntimeError("autocommit sessions are for PostgreSQL")
        async with self._autocommit_sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request (``Database.transaction``), writing unless the method
    only reads."""
    database: Database = request.app.state.slotwise.db
    async with database.transaction(writes=request.method not in READ_METHODS) as session:
        yield session


@asynccontextmanager
async def _held(lock: asyncio.Lock | None) -> AsyncIterator[None]:
    if lock is None:
        yield
        return
    async with lock:
        yield


# scope="function": commit before the response is sent, so a 2xx means the change is durable.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
