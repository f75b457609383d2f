"""Telling a worker's slot cache what changed, from this process and from others.

Three sources, so that a cached answer never outlives a change it depends on:

- **This process's commits**: SQLAlchemy session events collect the providers (and users)
  whose rows a flush wrote, and report them to the cache when the transaction commits,
  before the response that made the change is sent.
- **Other processes on SQLite**: `PRAGMA data_version` on a connection of the cache's own
  changes whenever another connection commits to the file. It costs a few microseconds, so
  it is read on every slot request, and any change flushes the whole cache.
- **Other processes on PostgreSQL**: triggers (migration 0006) announce every change to the
  watched tables on the channel `slotwise_schedule`, whoever made it; each worker listens
  on a connection of its own. Until it listens, and whenever that connection is lost, the
  cache is disabled, and it is flushed when listening starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from itertools import chain
from typing import Any

import asyncpg
import structlog
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, UOWTransaction

from slotwise.availability.cache import SlotCache
from slotwise.availability.models import DateOverride, TimeOff, WeeklyPattern
from slotwise.booking.models import Appointment
from slotwise.providers.models import Provider, Service
from slotwise.users.models import User

CHANNEL = "slotwise_schedule"
CACHE_KEY = "slotwise.slot_cache"  # in session.info: the cache this session's commits reach
_CHANGED_KEY = "slotwise.schedule_changed"
RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)

log = structlog.get_logger("slotwise.slots")


def _concerned(instance: object) -> Iterator[uuid.UUID]:
    """Whose slots a changed row can move: its provider's, or a provider user's."""
    if isinstance(instance, Appointment | WeeklyPattern | DateOverride | TimeOff | Service):
        yield instance.provider_id
    elif isinstance(instance, Provider | User):
        yield instance.id


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: UOWTransaction) -> None:
    if CACHE_KEY not in session.info:
        return
    changed: set[uuid.UUID] = session.info.setdefault(_CHANGED_KEY, set())
    for instance in chain(session.new, session.dirty, session.deleted):
        changed.update(_concerned(instance))


@event.listens_for(Session, "after_commit")
def _report(session: Session) -> None:
    changed = session.info.pop(_CHANGED_KEY, None)
    cache: SlotCache | None = session.info.get(CACHE_KEY)
    if changed and cache is not None:
        cache.changed(changed)


class SqliteWatch:
    """Flushes the cache when the database file changed since the last look."""

    def __init__(self, path: str, cache: SlotCache) -> None:
        self.path = path
        self.cache = cache
        self._connection: sqlite3.Connection | None = None
        self._seen: int | None = None

    def ready(self) -> bool:
        """True if the cache may be used for this request (it was flushed if need be)."""
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            version = self._connection.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            self.cache.flush()
            self.close()
            return False
        if version != self._seen:
            self._seen = version
            self.cache.flush()
        return True

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            self._seen = None


class PostgresListener:
    """LISTENs on `slotwise_schedule`; the cache is enabled only while it does."""

    def __init__(self, url: str, cache: SlotCache) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.cache = cache
        self._task: asyncio.Task[None] | None = None
        cache.enabled = False

    def ready(self) -> bool:
        """True if the cache may be used for this request: while listening. The first call
        starts listening, so any way of running the app (with its lifespan or not) gets it."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen_forever())
        return self.cache.enabled

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                connection = await asyncpg.connect(self.dsn)
            except (OSError, asyncpg.PostgresError) as error:
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("slot_cache_listen_failed", error=str(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            try:
                await self._listen(connection)
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("slot_cache_listen_failed", error=str(error))
            finally:
                self.cache.enabled = False
                self.cache.flush()
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)

    async def _listen(self, connection: Any) -> None:
        """Until the connection is lost: the cache is on, and told of every change."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(CHANNEL, self._heard)
        self.cache.flush()  # whatever changed while nobody listened
        self.cache.enabled = True
        await lost.wait()
        log.warning("slot_cache_listen_lost")

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            changed = uuid.UUID(payload)
        except ValueError:
            self.cache.flush()
            return
        self.cache.changed((changed,))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
