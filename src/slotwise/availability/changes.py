"""Telling a worker's slot cache what changed, from this process and from others.

Three sources, so that a cached answer never outlives a change it depends on:

- **This process's commits**: SQLAlchemy session events collect the providers (and users)
  whose rows a flush wrote, and the bookings' changes written with Core statements
  (``note``, ``moved``), and report them to the cache when the transaction commits, before
  the response that made the change is sent.
- **Other processes on SQLite**: triggers (migration 0008) log whose schedule changed in
  `schedule_changes` (an appointment's row with its declared columns, migration 0015);
  `PRAGMA data_version` on a connection of the cache's own changes
  whenever another connection commits to the file. It costs a few microseconds, so it is
  read on every slot request, and when it moved the new log rows are read.
- **Other processes on PostgreSQL**: triggers (migration 0006) announce every change to the
  watched tables on the channel `slotwise_schedule`, whoever made it; each worker listens
  on a connection of its own. Until listening is known to work (triggers armed, a
  notification's round trip), and whenever it stops working, the cache is off, and it
  starts empty when it is on again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from itertools import chain
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, UOWTransaction

from slotwise.availability import sources
from slotwise.availability.busy import Moved, Taken
from slotwise.availability.cache import SlotCache

CHANNEL = "slotwise_schedule"
# The tables whose changes move slots (``sources``); migration 0006 gives each a trigger of
# this name, and a test holds the database's triggers to the declaration.
TRIGGER_NAMES = tuple(f"{source.table}_schedule_changed" for source in sources.SOURCES)
_ARMED_TRIGGERS = (
    "SELECT count(*) FROM pg_trigger WHERE tgname = ANY($1::text[]) AND tgenabled <> 'D'"
)
APPLICATION_NAME = "slotwise-slot-cache"  # how the listener shows in pg_stat_activity
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TIMEOUT_SECONDS = 5.0
CACHE_KEY = "slotwise.slot_cache"  # in session.info: the cache this session's commits reach
_CHANGED_KEY = "slotwise.schedule_changed"
_MOVED_KEY = "slotwise.bookings_moved"
RECONNECT_SECONDS = (0.2, 1.0, 2.0, 5.0)

log = structlog.get_logger("slotwise.slots")


def concerned(instance: object) -> Iterator[uuid.UUID]:
    """Whose slots a changed row can move (its provider's, or a provider user's), as the
    declaration of sources says; nothing for a row of any other table."""
    table = getattr(instance, "__tablename__", None)
    source = sources.BY_TABLE.get(table) if isinstance(table, str) else None
    if source is not None:
        yield getattr(instance, source.column)


def follow(session_class: type[Session]) -> None:
    """Report the commits of sessions of this class (a ``Database``'s own) to the slot cache
    their ``session.info`` names: the rows a flush changed, and those ``note`` was told of.
    Registered by the app factory, never by importing this module."""
    event.listen(session_class, "after_flush", _collect)
    event.listen(session_class, "after_commit", _report)


def _collect(session: Session, _context: UOWTransaction) -> None:
    if CACHE_KEY not in session.info:
        return
    changed: set[uuid.UUID] = session.info.setdefault(_CHANGED_KEY, set())
    for instance in chain(session.new, session.dirty, session.deleted):
        changed.update(concerned(instance))


def note(session: Session, provider_id: uuid.UUID) -> None:
    """A change written with a Core statement, which the flush above does not see: reported
    to the cache when the transaction commits, as a flushed one is."""
    if CACHE_KEY in session.info:
        session.info.setdefault(_CHANGED_KEY, set()).add(provider_id)


def moved(session: Session, change: Moved) -> None:
    """A booking's change written with a Core statement, as it left the appointment:
    applied to the kept listings of its provider when the transaction commits."""
    if CACHE_KEY in session.info:
        session.info.setdefault(_MOVED_KEY, []).append(change)


def _report(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the commit is yet to come
        return
    changed = session.info.pop(_CHANGED_KEY, None)
    moves = session.info.pop(_MOVED_KEY, None)
    cache: SlotCache | None = session.info.get(CACHE_KEY)
    if cache is not None:
        if changed:
            cache.changed(changed)
        if moves:
            cache.moved(moves)


ReadTaken = Callable[[Mapping[str, object]], Taken]


def moved_of(provider_id: uuid.UUID, detail: Mapping[str, object], taken: ReadTaken) -> Moved:
    """A change notice's description of an appointment (migration 0015) as a `Moved`;
    ValueError, KeyError or TypeError if it is not one."""
    appointment_id = uuid.UUID(str(detail["id"]))
    if detail.get("deleted"):
        return Moved(provider_id, appointment_id, None)
    return Moved(provider_id, appointment_id, taken(detail))


class SqliteWatch:
    """Reads the change log (migration 0008) when the database file's data version moved.

    `PRAGMA data_version` on the watch's own connection changes whenever another connection
    commits (cheap enough to read at every slot request). Only then are the new
    rows of `schedule_changes` read, and only the providers (or users) they name are
    forgotten: a commit that changed no schedule (a login, a mail marked sent) costs the
    cache nothing. A log that skips rows (this worker fell more than its kept length behind),
    or cannot be read, empties the cache.
    """

    def __init__(self, path: str, cache: SlotCache, taken: ReadTaken) -> None:
        self.path = path
        self.cache = cache
        self.taken = taken
        self._connection: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._last_seq: int | None = None

    def ready(self) -> bool:
        """True if the cache may be used for this request (it was told of changes first)."""
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            connection = self._connection
            version = connection.execute("PRAGMA data_version").fetchone()[0]
            if version == self._seen:
                return True
            self._seen = version
            if self._last_seq is None:  # first look: start from the end of the log
                self._last_seq = connection.execute(_LOG_END).fetchone()[0]
                self.cache.flush()
                return True
            rows = connection.execute(_LOG_SINCE, (self._last_seq,)).fetchall()
        except sqlite3.Error:
            self.cache.flush()
            self.close()
            return False
        if not rows:
            return True
        skipped = rows[0][0] != self._last_seq + 1  # pruned past us: what we missed is unknown
        self._last_seq = rows[-1][0]
        if skipped:
            self.cache.flush()
            return True
        voided: list[uuid.UUID] = []
        moves: list[Moved] = []
        try:
            for _seq, ref, detail in rows:
                if detail is None:
                    voided.append(uuid.UUID(ref))
                else:
                    moves.append(moved_of(uuid.UUID(ref), json.loads(detail), self.taken))
        except (ValueError, KeyError, TypeError):  # not as migration 0015 writes them
            log.warning("slot_cache_notice_unreadable", exc_info=True)
            self.cache.flush()
            return True
        self.cache.changed(voided)
        self.cache.moved(moves)
        return True

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            self._seen = None
            self._last_seq = None


_LOG_END = "SELECT coalesce(max(seq), 0) FROM schedule_changes"
_LOG_SINCE = "SELECT seq, ref, detail FROM schedule_changes WHERE seq > ? ORDER BY seq"


class PostgresListener:
    """LISTENs on `slotwise_schedule`; the cache is on only while that is known to work.

    Known to work means: the triggers that announce changes are in place and enabled, and a
    notification this connection sends comes back to it. Both are checked when listening
    starts and then every `heartbeat_seconds`, so a connection that died without a word (a
    database host gone, a NAT entry dropped: no FIN ever arrives) or a pooler that does not
    pass notifications through turns the cache off within seconds instead of never.
    """

    def __init__(self, url: str, cache: SlotCache, taken: ReadTaken) -> None:
        parsed = make_url(url)
        # The SQLAlchemy dialect's URL options are not asyncpg's server settings; only
        # ssl carries over.
        self.ssl = parsed.query.get("ssl") or parsed.query.get("sslmode")
        self.dsn = parsed.set(drivername="postgresql", query={}).render_as_string(
            hide_password=False
        )
        self.cache = cache
        self.taken = taken
        self._task: asyncio.Task[None] | None = None
        self._echo: tuple[str, asyncio.Future[None]] | None = None
        self._unarmed = False
        self._closed = False
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self.heartbeat_timeout_seconds = HEARTBEAT_TIMEOUT_SECONDS
        cache.enabled = False

    def ready(self) -> bool:
        """True if the cache may be used for this request: while listening works. The first
        call starts listening, so any way of running the app (with its lifespan or not)
        gets it; a listener that ended for any reason is started again."""
        if not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._listen_forever())
        return self.cache.enabled

    async def _listen_forever(self) -> None:
        # The driver is loaded here, not with the module: a worker on SQLite never needs it.
        import asyncpg

        failures = 0
        while not self._closed:
            try:
                connection = await asyncpg.connect(
                    self.dsn, ssl=self.ssl, server_settings={"application_name": APPLICATION_NAME}
                )
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("slot_cache_listen_failed", error=str(error))
            else:
                try:
                    await self._listen(connection)
                    failures = 0
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    log.warning("slot_cache_listen_lost", exc_info=True)
                finally:
                    self._off()
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(1):
                            await connection.close()
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1

    async def _listen(self, connection: Any) -> None:
        """Until the connection is lost or stops answering: the cache is on while checks
        pass, and told of every change."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(CHANNEL, self._heard)
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
        while not lost.is_set() and not self._closed:
            async with asyncio.timeout(self.heartbeat_timeout_seconds):
                working = await self._working(connection)
            if working:
                if not self.cache.enabled:
                    self.cache.flush()  # whatever changed while nobody listened
                    self.cache.enabled = True
            else:
                self._off()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_seconds):
                    await lost.wait()

    async def _working(self, connection: Any) -> bool:
        armed = await connection.fetchval(_ARMED_TRIGGERS, list(TRIGGER_NAMES))
        if armed != len(TRIGGER_NAMES):  # migration 0006 missing, or triggers disabled
            if not self._unarmed:
                log.warning("slot_cache_triggers_missing", armed=armed, of=len(TRIGGER_NAMES))
            self._unarmed = True
            return False
        self._unarmed = False
        token = f"echo:{secrets.token_hex(8)}"
        echoed = asyncio.get_running_loop().create_future()
        self._echo = (token, echoed)
        await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, token)
        await echoed
        return True

    def _off(self) -> None:
        self.cache.enabled = False
        self.cache.flush()

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith("echo:"):
            if self._echo is not None and self._echo[0] == payload and not self._echo[1].done():
                self._echo[1].set_result(None)
            return
        try:
            if payload.startswith("{"):  # an appointment's row (migration 0015)
                detail = json.loads(payload)
                provider_id = uuid.UUID(str(detail["provider_id"]))
                self.cache.moved((moved_of(provider_id, detail, self.taken),))
            else:
                self.cache.changed((uuid.UUID(payload),))
        except (ValueError, KeyError, TypeError):  # "flush" (a TRUNCATE), or unexpected
            self.cache.flush()

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: it ended, and nobody else will ask
        self._off()
