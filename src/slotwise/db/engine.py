"""The engine: ``make_engine`` for a database URL, with a fixed pool, SQLite's connection
settings (pragmas, WAL, BEGIN IMMEDIATE for writers) and PostgreSQL's liveness check."""

from __future__ import annotations

from typing import Any

from sqlalchemy import QueuePool, event, make_url
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from slotwise.db import sqlite

# Connections a pool holds unless told otherwise. SQLite's work runs in this process (a
# thread per connection) and its writers take turns (``Database.write_lock``): one writer
# and two readers keep both cores busy, and more connections add threads contending for
# the interpreter and page caches (each connection keeps its own, up to 2 MiB, filled as
# the database grows), not throughput.
POOL_SIZE = {"sqlite": 3, "postgresql": 20}

# The execution option that makes a SQLite connection's statements transactions of their
# own: no BEGIN is sent (see ``_configure_sqlite``).
SQLITE_AUTOCOMMIT = "slotwise_sqlite_autocommit"


def lone_read(dialect: str) -> dict[str, Any]:
    """Execution options for a connection whose statements, reads, run outside any
    transaction: each sees a snapshot of its own, as PostgreSQL's READ COMMITTED statements
    do within one (on SQLite, a transaction would give them one snapshot together), and no
    BEGIN or ROLLBACK is sent around them. For a read whose statements need no common
    snapshot.
    On PostgreSQL that is the driver's autocommit. On SQLite it is this module's own
    option rather than the dialect's AUTOCOMMIT, whose setting and reset each cost a trip
    to aiosqlite's thread (the connection is in SQLite's autocommit mode already: BEGIN is
    ours to send)."""
    if dialect == "sqlite":
        return {SQLITE_AUTOCOMMIT: True}
    return {"isolation_level": "AUTOCOMMIT"}


def make_engine(
    url: str, *, pool_size: int | None = None, foreign_keys: bool = True
) -> AsyncEngine:
    """``pool_size``: the fixed pool's connections (default ``POOL_SIZE`` of the database).
    ``foreign_keys=False`` is for migrations only: SQLite's batch mode recreates a table,
    and dropping a referenced table with foreign keys on would cascade into its children."""
    sqlite_url = url.startswith("sqlite")
    if pool_size is None:
        pool_size = POOL_SIZE["sqlite" if sqlite_url else "postgresql"]
    # A fixed pool on both: overflow connections are closed when handed back, so under
    # steady concurrency above pool_size they would be opened again and again (on
    # PostgreSQL, connection set-up and statement preparation; on SQLite, a thread, the
    # file and the PRAGMAs). Requests beyond pool_size wait for a connection.
    fixed = {"pool_size": pool_size, "max_overflow": 0}
    if sqlite_url:
        # An in-memory database keeps the dialect's one shared connection (StaticPool).
        pooled = issubclass(SQLiteDialect_aiosqlite.get_pool_class(make_url(url)), QueuePool)
        engine = create_async_engine(
            url,
            # A lone read's SELECT runs on the event loop's thread, not aiosqlite's (one
            # thread at a time still: a pooled connection is checked out by one task, and
            # the trips before it have ended; an in-memory database's one shared connection
            # is not in WAL mode, so its statements all travel).
            connect_args={"timeout": 30, "check_same_thread": False},
            module=sqlite.dbapi(),
            **(fixed if pooled else {}),
        )
        _configure_sqlite(engine, foreign_keys=foreign_keys)
        return engine
    engine = create_async_engine(url, **fixed)
    event.listen(engine.sync_engine, "checkout", _discard_if_closed)
    return engine


def _configure_sqlite(engine: AsyncEngine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver so that we emit it ourselves (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # The mode SQLite took: an in-memory database, or a file system without the shared
        # memory WAL needs, keeps its own, where a read may wait for a writer.
        (mode,) = cursor.fetchone()
        assert isinstance(dbapi_connection, sqlite.OneTripConnection)
        dbapi_connection.wal = str(mode).lower() == "wal"
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON" if foreign_keys else "PRAGMA foreign_keys=OFF")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers ask for BEGIN IMMEDIATE: SQLite then takes the write lock at the start,
        # so their check-then-write cannot interleave (see sessions.Database.transaction).
        # The adapter sends it with the transaction's first statement (db/sqlite.py).
        # A connection for lone reads (``lone_read``) gets none: each statement is its own,
        # and in WAL mode its SELECTs run on the calling thread (``OneTripConnection.inline``).
        options = conn.get_execution_options()
        adapted = conn.connection.dbapi_connection
        assert isinstance(adapted, sqlite.OneTripConnection)
        lone = bool(options.get(SQLITE_AUTOCOMMIT))
        adapted.inline = lone and adapted.wal
        if lone:
            return
        adapted.begin("BEGIN IMMEDIATE" if options.get("sqlite_immediate") else "BEGIN")


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
