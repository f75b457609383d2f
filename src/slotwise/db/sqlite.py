"""SQLite through aiosqlite, one trip to its thread a statement.

aiosqlite runs each call on the connection in a thread of its own and hands the result back
to the event loop: a trip that costs the worker far more than a small indexed statement
does in SQLite. SQLAlchemy's adapter makes four for every statement that returns rows
(open a cursor, execute, fetch, close) and three for one that does not, so a listing's one
SELECT inside BEGIN and ROLLBACK took eight. This adapter, given to the engine as its DBAPI
module (``make_engine``), does the whole of a statement in one trip, and sends BEGIN with
the transaction's first statement rather than on a trip of its own: a read transaction
takes two (BEGIN with its SELECT, then ROLLBACK), a transaction that never runs a statement
none, and a lone read (``engine.lone_read``: no BEGIN at all, as a listing reads) one a
statement, or none in WAL mode: its SELECTs then run on the event loop's thread
(``OneTripConnection.inline``).

Deferring BEGIN changes nothing a transaction can see: nothing else runs on the connection
between the BEGIN and the statement it now travels with, and a BEGIN IMMEDIATE that waits
for the write lock still does so before its transaction's first statement.

A write whose outcome nothing reads at once (``insert_rows``' INSERTs: no rows returned, ids
made by the caller) may be deferred the same way (``deferred``): it travels with the next
statement's trip, or with the COMMIT, run before it in the order written; a ROLLBACK drops
it. Its error, if any, is raised by that trip, with that statement.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# What one trip answers: the rows (None for a statement that returns none), the cursor's
# description, rowcount and lastrowid, and whether a transaction is open after it.
_Outcome = tuple[list[Any] | None, Any, int, int | None, bool]
# A statement as a trip carries it: its text, its parameters, and whether they are many rows'.
_Statement = tuple[str, Any, bool]


def _send(connection: sqlite3.Connection, begin: str | None, deferred: list[_Statement]) -> None:
    """In aiosqlite's thread: the deferred BEGIN, if any, then the deferred writes."""
    if begin is not None:
        connection.execute(begin)
    for operation, parameters, many in deferred:
        if many:
            connection.executemany(operation, parameters)
        else:
            connection.execute(operation, () if parameters is None else parameters)


def _run(
    connection: sqlite3.Connection,
    begin: str | None,
    deferred: list[_Statement],
    operation: str,
    parameters: Any,
    many: bool,
) -> _Outcome:
    """In aiosqlite's thread (a lone read's SELECT: on the event loop's): the deferred
    BEGIN and writes, if any, then the statement, its rows fetched and its cursor closed."""
    _send(connection, begin, deferred)
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else None
        in_transaction = connection.in_transaction
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid, in_transaction
    finally:
        cursor.close()


def _end(
    connection: sqlite3.Connection, begin: str | None, deferred: list[_Statement], commit: bool
) -> None:
    """In aiosqlite's thread: COMMIT, the deferred BEGIN and writes sent before it; or
    ROLLBACK, what was deferred dropped with the transaction. A COMMIT that fails (a
    deferred write refused, the database busy) rolls the transaction back before it
    raises: the connection goes back to the pool with none open, whoever ends it next."""
    if not commit:
        connection.rollback()
        return
    try:
        _send(connection, begin, deferred)
        connection.commit()
    except BaseException:
        if connection.in_transaction:
            connection.rollback()
        raise


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement, fetch and close are one trip; it holds the fetched rows
    and what the driver's cursor said of them."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection):
        # No driver cursor is opened here (the base class opens one, a trip of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]  # as the DBAPI's: None before an INSERT

    async def _async_soft_close(self) -> None:
        """Nothing to close: the driver's cursor was closed in the statement's trip."""

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapted = self._adapt_connection
        assert isinstance(adapted, OneTripConnection)
        if adapted.defer:  # sent with the next trip: nothing of it is read now
            adapted.defer = False
            adapted.deferred.append((operation, parameters, many))
            self._rows, self._description, self._rowcount, self._lastrowid = (
                collections.deque(),
                None,
                -1,
                None,
            )
            return
        if adapted.inline and _reads(operation, many) and not adapted.deferred:
            # A lone read's SELECT (no BEGIN pending: each statement is its own
            # transaction), run here, on the event loop's thread (``OneTripConnection.inline``).
            outcome = _run(self._connection._conn, None, [], operation, parameters, many)
        else:
            async with adapted._execute_mutex:
                begin, adapted.pending_begin = adapted.pending_begin, None
                deferred, adapted.deferred = adapted.deferred, []
                try:
                    outcome = await self._connection._execute(
                        _run, self._connection._conn, begin, deferred, operation, parameters, many
                    )
                except BaseException:
                    # Whether a transaction is open is unknown (the BEGIN may have run, or a
                    # cancelled wait left the statement running): the next end makes its trip.
                    adapted.in_transaction = True
                    raise
        rows, self._description, self._rowcount, self._lastrowid, adapted.in_transaction = outcome
        if rows is not None:
            self._rows = collections.deque(rows)


def _reads(operation: str, many: bool) -> bool:
    """A statement that only reads (one SELECT): one that writes may wait for the lock."""
    return not many and operation[:6].upper() == "SELECT"


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("defer", "deferred", "in_transaction", "inline", "pending_begin", "wal")

    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any):
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        self.in_transaction = False
        # Reads of a lone read's transaction (``engine.lone_read``; set by the engine's
        # begin listener, reset at its end) run on the calling thread, the event loop's,
        # not on a trip to aiosqlite's: a small indexed read costs SQLite far less than
        # the trip, two thread hand-offs. Only in WAL mode (``wal``, as the connection's
        # PRAGMA answered), where a read does not wait for a writer's lock, so it does not
        # hold up the loop; a statement that writes still travels.
        self.inline = False
        self.wal = False
        self.defer = False  # the next statement is deferred (``defer_next``)
        self.deferred: list[_Statement] = []  # writes to send before the next statement

    def defer_next(self) -> None:
        """The next statement (a write nothing reads at once) waits for the next trip."""
        self.defer = True

    def begin(self, statement: str) -> None:
        """Begin a transaction with ``statement`` (BEGIN or BEGIN IMMEDIATE), sent with the
        transaction's first statement."""
        self.pending_begin = statement

    def commit(self) -> None:
        self._end(commit=True)

    def rollback(self) -> None:
        self._end(commit=False)

    def _end(self, *, commit: bool) -> None:
        # A BEGIN never sent has nothing to end; with no transaction open, neither has
        # SQLite (its COMMIT and ROLLBACK do nothing then), so no trip is made. Writes
        # deferred are sent with a COMMIT (their BEGIN with them) and dropped by a ROLLBACK.
        begin, self.pending_begin = self.pending_begin, None
        deferred, self.deferred = self.deferred, []
        self.defer = False
        self.inline = False
        if not commit or not deferred:
            begin = None
        if not (self.in_transaction or (deferred and commit)) or not self._connection._connection:
            return
        try:
            await_(self._connection._execute(_end, self._connection._conn, begin, deferred, commit))
        except Exception as error:
            self.in_transaction = True  # open as far as we know: a ROLLBACK follows
            self._handle_exception(error)
        self.in_transaction = False


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy adapts it, its connections one trip a statement."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDBAPI:
    return OneTripDBAPI(aiosqlite, sqlite3)


@asynccontextmanager
async def deferred(connection: AsyncConnection, when: bool = True) -> AsyncIterator[None]:
    """The one statement executed inside, a write whose outcome nothing reads at once, sent
    with the connection's next trip (``OneTripConnection.defer_next``). Sent as it comes on
    any other database, inside a savepoint (its failure must be the savepoint's, not the
    statement's after it), and when not ``when``. Left without its statement (it failed
    before reaching the driver), the deferral ends with the block."""
    adapted = None
    if when and connection.dialect.name == "sqlite" and not connection.in_nested_transaction():
        adapted = (await connection.get_raw_connection()).dbapi_connection
        assert isinstance(adapted, OneTripConnection), "SQLite through this module's adapter"
        adapted.defer_next()
    try:
        yield
    finally:
        if adapted is not None:
            adapted.defer = False
