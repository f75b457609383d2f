"""When each key was last used: recorded at most once a minute per key, off the request's
way (a task of its own, in its own transaction), so a request made with a key never waits
for a write and most write nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import structlog

from slotwise.apikeys import repository
from slotwise.apikeys.models import ApiKey
from slotwise.db import Database

log = structlog.get_logger(__name__)

INTERVAL = timedelta(minutes=1)
MAX_REMEMBERED = 10_000


class KeyUses:
    """This worker's record of the keys' last uses, and the writes under way."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._recorded: dict[uuid.UUID, datetime] = {}  # written by this worker, oldest first
        self._writes: set[asyncio.Task[None]] = set()

    def note(self, key: ApiKey, *, now: datetime) -> None:
        """A use of the key: written unless the key's row or this worker recorded one less
        than a minute ago."""
        known = [at for at in (key.last_used_at, self._recorded.get(key.id)) if at is not None]
        if known and now - max(known) < INTERVAL:
            return
        self._recorded.pop(key.id, None)
        if len(self._recorded) >= MAX_REMEMBERED:
            del self._recorded[next(iter(self._recorded))]
        self._recorded[key.id] = now
        write = asyncio.create_task(self._write(key.id, now))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)

    async def _write(self, key_id: uuid.UUID, now: datetime) -> None:
        try:
            async with self._db.transaction(writes=True) as session:
                await repository.record_use(session, key_id=key_id, now=now)
        except Exception as exc:  # a last-used time is not worth a failure anywhere
            log.warning("api_key_use_not_recorded", key_id=str(key_id), error=str(exc)[:200])

    async def settle(self) -> None:
        """Wait for the writes under way (at shutdown; tests, before reading the times)."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
