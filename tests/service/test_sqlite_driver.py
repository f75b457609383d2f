"""SQLite's driver adapter (db/sqlite.py): one trip to aiosqlite's thread a statement, BEGIN
sent with the transaction's first statement, a lone read's SELECTs run on the event loop's
thread, and transactions that still behave as SQLite's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from slotwise.db.engine import POOL_SIZE, lone_read, make_engine
from slotwise.db.sqlite import OneTripConnection, deferred

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, nullable=False, unique=True),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls made on aiosqlite's thread, by name, as they happen."""
    made: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(
        self: aiosqlite.Connection, fn: object, *args: object, **kwargs: object
    ) -> object:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


async def _warm(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:  # the pool's connection is open
        await connection.execute(select(1))


async def test_a_read_transaction_is_two_trips(engine: AsyncEngine, trips: list[str]) -> None:
    await _warm(engine)
    trips.clear()

    async with engine.connect() as connection:
        rows = (await connection.execute(select(items.c.id))).all()
    # BEGIN travels with the SELECT; then the ROLLBACK that returns it to the pool.
    assert rows == []
    assert trips == ["_run", "_end"]


async def test_a_lone_read_makes_no_trip_and_no_transaction(
    engine: AsyncEngine, trips: list[str]
) -> None:
    await _warm(engine)
    trips.clear()

    async with engine.connect() as connection:
        await connection.execution_options(**lone_read("sqlite"))
        rows = (await connection.execute(select(items.c.id))).all()
        again = (await connection.execute(select(func.count()).select_from(items))).scalar()
        adapted = (await connection.get_raw_connection()).dbapi_connection
        assert isinstance(adapted, OneTripConnection)
        assert not adapted.in_transaction  # no BEGIN went with it
    # The SELECTs ran on this thread, without BEGIN, and no ROLLBACK: nothing to end.
    assert (rows, again) == ([], 0)
    assert trips == []

    # Each statement is a transaction of its own: a write is committed as it is made,
    # seen by another connection while this one's block has not ended.
    async with engine.connect() as connection:
        await connection.execution_options(**lone_read("sqlite"))
        lone = (await connection.get_raw_connection()).dbapi_connection
        trips.clear()
        await connection.execute(insert(items).values(name="alone"))
        assert trips == ["_run"]  # a write travels: it may wait for the write lock
        async with engine.connect() as other:
            assert (await other.execute(select(items.c.name))).scalars().all() == ["alone"]
    # Back in the pool, that connection begins transactions again for its next user, a
    # writer's BEGIN IMMEDIATE too (the pool hands out the others first: take them all).
    immediate = engine.execution_options(sqlite_immediate=True)
    async with immediate.connect() as first, immediate.connect() as second:
        connections = {}
        for connection in (first, second):
            connections[id((await connection.get_raw_connection()).dbapi_connection)] = connection
        connection = connections[id(lone)]
        await connection.execute(insert(items).values(name="undone"))
        adapted = (await connection.get_raw_connection()).dbapi_connection
        assert isinstance(adapted, OneTripConnection)
        assert adapted.in_transaction
        await connection.rollback()
        assert (await connection.execute(select(items.c.name))).scalars().all() == ["alone"]


async def test_without_wal_a_lone_read_still_travels(trips: list[str]) -> None:
    """Where SQLite did not take WAL mode (here an in-memory database, whose one connection
    every task shares), a read may wait for a writer: a lone read's SELECT then makes its
    trip, never waiting on the event loop's thread."""
    engine = make_engine("sqlite+aiosqlite://")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        trips.clear()
        async with engine.connect() as connection:
            await connection.execution_options(**lone_read("sqlite"))
            rows = (await connection.execute(select(items.c.id))).all()
            adapted = (await connection.get_raw_connection()).dbapi_connection
            assert isinstance(adapted, OneTripConnection)
            assert not adapted.wal
        assert rows == []
        assert trips == ["_run"]  # no BEGIN, but a trip
    finally:
        await engine.dispose()


async def test_a_lone_read_does_not_wait_for_a_writer(engine: AsyncEngine) -> None:
    """A lone read runs on the event loop's thread: it must never wait there for a lock.
    While a writer holds the write lock with a change not yet committed, it reads at once
    what was committed (WAL mode), and the writer's change is kept."""
    async with engine.begin() as connection:
        await connection.execute(insert(items).values(name="committed"))
    immediate = engine.execution_options(sqlite_immediate=True)
    async with immediate.begin() as writer:
        await writer.execute(insert(items).values(name="pending"))
        async with engine.connect() as reader:
            await reader.execution_options(**lone_read("sqlite"))
            loop = asyncio.get_running_loop()
            started = loop.time()
            names = (await reader.execute(select(items.c.name))).scalars().all()
            waited = loop.time() - started
    assert names == ["committed"]
    assert waited < 1  # the busy timeout is 10 s: a read that waited would take them
    async with engine.connect() as connection:
        names = (await connection.execute(select(items.c.name).order_by(items.c.id))).all()
    assert [name for (name,) in names] == ["committed", "pending"]


async def test_a_failed_lone_read_leaves_the_connection_usable(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.connect() as connection:
        await connection.execution_options(**lone_read("sqlite"))
        with pytest.raises(StatementError, match="no such table"):
            await connection.execute(text("SELECT * FROM nowhere"))
        await connection.rollback()
        await connection.execute(insert(items).values(name="after"))
        assert (await connection.execute(select(items.c.name))).scalars().all() == ["after"]
    # A transaction begun on the same pooled connection is one again (BEGIN, then ROLLBACK).
    trips.clear()
    async with engine.connect() as connection:
        await connection.execute(select(items.c.id))
    assert trips == ["_run", "_end"]


async def test_a_transaction_with_no_statement_makes_no_trip(
    engine: AsyncEngine, trips: list[str]
) -> None:
    await _warm(engine)
    trips.clear()

    async with engine.begin():
        pass
    assert trips == []


async def test_rows_counts_and_ids_come_back_as_the_driver_gives_them(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as connection:
        first = await connection.execute(insert(items).values(name="a"))
        await connection.execute(insert(items), [{"name": "b"}, {"name": "c"}])
        changed = await connection.execute(
            update(items).where(items.c.name != "a").values(name=items.c.name + "!")
        )
        names = (await connection.execute(select(items.c.name).order_by(items.c.id))).scalars()
        assert first.inserted_primary_key == (1,)
        assert changed.rowcount == 2
        assert list(names) == ["a", "b!", "c!"]


async def test_a_failed_statement_is_rolled_back_with_its_transaction(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(items).values(name="taken"))

    async def transaction(*names: str) -> None:
        async with engine.begin() as connection:
            for name in names:
                await connection.execute(insert(items).values(name=name))

    with pytest.raises(IntegrityError):
        await transaction("taken")  # unique: fails
    with pytest.raises(IntegrityError):
        await transaction("not kept", "taken")

    # The failed transactions (the first failing with its BEGIN, in one trip) were ended:
    # the pool's connection came back with none open, the next transaction begins and
    # commits, and nothing of the failed ones is kept.
    async with engine.begin() as connection:
        await connection.execute(insert(items).values(name="next"))
    async with engine.connect() as connection:
        names = (await connection.execute(select(items.c.name).order_by(items.c.id))).scalars()
        assert names.all() == ["taken", "next"]


async def test_begin_immediate_still_holds_the_write_lock_from_the_first_statement(
    engine: AsyncEngine,
) -> None:
    """Two writers that read then write (the booking write's shape) run one after the other:
    the second's BEGIN IMMEDIATE, sent with its read, waits for the first's COMMIT."""
    immediate = engine.execution_options(sqlite_immediate=True)
    order: list[str] = []
    first_has_read = asyncio.Event()

    async def writer(name: str, hold: float) -> None:
        async with immediate.begin() as connection:
            count = len((await connection.execute(select(items.c.id))).all())
            order.append(f"{name} read {count}")
            first_has_read.set()
            await asyncio.sleep(hold)
            await connection.execute(insert(items).values(name=name))

    async def second() -> None:
        await first_has_read.wait()
        await writer("second", 0)

    await asyncio.gather(writer("first", 0.2), second())
    assert order == ["first read 0", "second read 1"]


async def test_a_cancelled_statement_leaves_no_transaction_open(engine: AsyncEngine) -> None:
    """A caller that stops waiting (a request cancelled) while its statement runs on the
    thread: nothing the statement did is kept. (SQLAlchemy discards a connection whose
    statement was cancelled, so this holds whatever the adapter knows of the transaction;
    the adapter's own bookkeeping after a failed statement is the test above.)"""
    async with engine.connect() as connection:
        await connection.execute(select(1))
        await connection.commit()

        statement = asyncio.ensure_future(connection.execute(insert(items).values(name="gone")))
        await asyncio.sleep(0)  # the statement is on its way to the thread
        statement.cancel()
        with pytest.raises(asyncio.CancelledError):
            await statement
        await connection.rollback()

    async with engine.connect() as connection:
        assert (await connection.execute(select(items.c.name))).all() == []


@pytest.mark.parametrize(("pool_size", "held"), [(4, 4), (None, POOL_SIZE["sqlite"])])
async def test_the_pool_keeps_its_connections_under_more_readers_than_it_holds(
    tmp_path: Path, pool_size: int | None, held: int
) -> None:
    """A fixed pool, as on PostgreSQL (by default a few connections: SQLite's work is in
    this process): readers beyond its size wait for a connection, rather than each opening
    one (a thread, the file, four PRAGMAs) that is closed again when handed back, as
    SQLAlchemy's default overflow for SQLite did under every burst."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_size=pool_size)
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda connection, _record: opened.append(1))

    async def read() -> None:
        async with engine.connect() as connection:
            await connection.execute(select(1))
            await asyncio.sleep(0.01)  # held while the others ask

    try:
        for _ in range(3):
            await asyncio.gather(*(read() for _ in range(12)))
    finally:
        await engine.dispose()
    assert len(opened) == held


async def test_a_deferred_write_travels_with_the_next_statement(
    engine: AsyncEngine, trips: list[str]
) -> None:
    await _warm(engine)
    trips.clear()
    async with engine.begin() as connection:
        async with deferred(connection):
            await connection.execute(insert(items), [{"name": "a"}, {"name": "b"}])
        assert trips == []  # not sent yet
        names = (await connection.execute(select(items.c.name).order_by(items.c.id))).all()
    # BEGIN, the INSERT and the SELECT in one trip, which sees the rows; then the COMMIT.
    assert [name for (name,) in names] == ["a", "b"]
    assert trips == ["_run", "_end"]
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(items))).scalar() == 2


async def test_a_deferred_write_travels_with_the_commit_and_a_rollback_drops_it(
    engine: AsyncEngine, trips: list[str]
) -> None:
    await _warm(engine)
    trips.clear()
    async with engine.begin() as connection, deferred(connection):
        await connection.execute(insert(items).values(name="kept"))
    assert trips == ["_end"]  # BEGIN, the INSERT and the COMMIT in one trip
    trips.clear()
    async with engine.connect() as connection:
        async with deferred(connection):
            await connection.execute(insert(items).values(name="dropped"))
        await connection.rollback()
    assert trips == []  # nothing was sent: no transaction to end
    async with engine.connect() as connection:
        names = (await connection.execute(select(items.c.name))).scalars().all()
    assert names == ["kept"]


async def _taken_again(engine: AsyncEngine, *, then_select: bool) -> None:
    """A transaction whose deferred INSERT breaks the unique name, then a SELECT or not."""
    async with engine.begin() as connection:
        await connection.execute(insert(items).values(name="fresh"))
        async with deferred(connection):
            await connection.execute(insert(items).values(name="taken"))
        if then_select:
            await connection.execute(select(1))


async def test_a_deferred_writes_error_is_raised_by_the_trip_that_sends_it(
    engine: AsyncEngine,
) -> None:
    """Its error comes with the next statement, or the commit, and its transaction is
    rolled back whole; the connection serves the next one."""
    async with engine.begin() as connection:
        await connection.execute(insert(items).values(name="taken"))
    with pytest.raises(IntegrityError):
        await _taken_again(engine, then_select=True)
    with pytest.raises(IntegrityError):
        await _taken_again(engine, then_select=False)
    async with engine.connect() as connection:
        names = (await connection.execute(select(items.c.name))).scalars().all()
    assert names == ["taken"]


async def test_a_deferral_left_without_its_statement_ends_with_its_block(
    engine: AsyncEngine, trips: list[str]
) -> None:
    """A statement that fails before reaching the driver (here a missing parameter) leaves
    no deferral behind for the next one."""
    await _warm(engine)
    async with engine.begin() as connection:
        with pytest.raises(StatementError):
            async with deferred(connection):
                await connection.execute(insert(items).values(name=bindparam("missing")))
        trips.clear()
        rows = (await connection.execute(select(items.c.name))).all()
        assert rows == []
        assert trips == ["_run"]  # sent at once, and its rows read


async def test_a_failed_commit_leaves_no_transaction_open(engine: AsyncEngine) -> None:
    """A COMMIT whose deferred write is refused rolls its transaction back in the thread:
    the connection holds no transaction (nor SQLite's write lock) whoever ends it next."""
    async with engine.begin() as connection:
        await connection.execute(insert(items).values(name="taken"))
    async with engine.connect() as connection:
        await connection.begin()
        await connection.execute(insert(items).values(name="partial"))
        async with deferred(connection):
            await connection.execute(insert(items).values(name="taken"))
        with pytest.raises(IntegrityError):
            await connection.commit()
        raw = (await connection.get_raw_connection()).dbapi_connection
        assert not raw._connection._conn.in_transaction
    async with engine.connect() as connection:
        names = (await connection.execute(select(items.c.name))).scalars().all()
    assert names == ["taken"]


async def test_inside_a_savepoint_a_write_is_sent_as_it_comes(
    engine: AsyncEngine, trips: list[str]
) -> None:
    """Its failure must be the savepoint's (rolled back to it), not the next statement's."""
    await _warm(engine)
    async with engine.begin() as connection:
        await connection.execute(insert(items).values(name="taken"))
        async with connection.begin_nested():
            trips.clear()
            async with deferred(connection):
                await connection.execute(insert(items).values(name="inside"))
            assert trips == ["_run"]
