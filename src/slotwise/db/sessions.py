"""Sessions and transactions: the ``Database`` of one application instance (its engine
and session factories, SQLite's single writer) and ``SessionDep``, the request's session:
one transaction per request."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from slotwise.db.engine import make_engine
from slotwise.errors import AppError


class Database:
    """The engine and session factory of one application instance."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        session_info: dict[str, Any] | None = None,
    ) -> None:
        """``session_info`` is given to every session (``session.info``): application-wide
        values that domain code reads without taking settings, e.g. the reminder offsets."""
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        info = dict(session_info or {})
        # This database's own Session class: a listener registered on it
        # (``event.listen(database.session_class, ...)``) hears this database's sessions and
        # nobody else's, and nothing is registered by importing a module.
        self.session_class: type[Session] = type("Session", (Session,), {"__module__": __name__})
        self.sessionmaker = self._maker(self.engine, info)
        self._write_sessionmaker = self.sessionmaker
        # SQLite admits one writer. Within a process, writers queue on this lock and are
        # woken the moment it is free, instead of polling in SQLite's busy handler (which
        # sleeps up to 100 ms a try); across processes the busy handler still arbitrates.
        self.write_lock: asyncio.Lock | None = None
        if self.is_sqlite:
            self.write_lock = asyncio.Lock()
            immediate = self.engine.execution_options(sqlite_immediate=True)
            self._write_sessionmaker = self._maker(immediate, info)

    def _maker(self, engine: AsyncEngine, info: dict[str, Any]) -> async_sessionmaker[AsyncSession]:
        return async_sessionmaker(
            engine, expire_on_commit=False, info=info, sync_session_class=self.session_class
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

    async def dispose(self) -> None:
        await self.engine.dispose()


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def transaction_memo(session: AsyncSession, key: str) -> dict[Any, Any]:
    """A dictionary kept in ``session.info`` under ``key`` for as long as the session's
    current transaction lasts: what a transaction learned that stays true until it ends
    (a lock it holds, a row it read that nothing else writes meanwhile). A new transaction
    starts with an empty one; with no transaction begun, nothing is kept."""
    transaction = session.sync_session.get_transaction()
    if transaction is None:
        return {}
    kept = session.info.get(key)
    if kept is None or kept[0]() is not transaction:
        # A weak reference: the transaction refers to the session, and a strong one here
        # would keep the session, and all it loaded, alive until a full collection.
        kept = (weakref.ref(transaction), {})
        session.info[key] = kept
    memo: dict[Any, Any] = kept[1]
    return memo


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
