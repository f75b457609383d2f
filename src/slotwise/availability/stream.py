"""Live slot listings: a listing sent again each time it changes (Server-Sent Events).

A stream is a listing (`SlotListings`) watched: the first event is the listing as it is,
and each change the worker's slot cache hears of that concerns the provider (this worker's
commits, other processes' through PostgreSQL's notices or SQLite's change log: see
`availability.changes`) stirs the stream, which computes the listing again (a kept one,
brought up to date by the change, costs no query) and sends it if it differs from the last
one sent. Time moves listings too (a slot passes the provider's notice, a guest's hold
ends): each stream also looks again every ``refresh_seconds``.

Memory per stream is bounded: it keeps a digest of the last listing sent and a flag, not a
queue of changes; a burst of changes while a slow client reads is one listing later. An
event's id is that digest: a client reconnecting with `Last-Event-ID` gets the listing only
if it changed since (what it missed is the current listing: each event is whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from slotwise.availability.cache import SlotAnswer
from slotwise.availability.schemas import SlotQuery
from slotwise.availability.slots import SlotListings
from slotwise.errors import AppError, ErrorBody, ServiceUnavailable

log = structlog.get_logger("slotwise.slots")

# How often this worker looks for other processes' changes while streams are open (SQLite's
# change log is read when asked; PostgreSQL's listener is started again if it ended).
POLL_SECONDS = 0.2


class TooManyStreams(ServiceUnavailable):
    code = "too_many_streams"
    message = "This worker has as many live slot streams open as it allows; try again later."


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a stream: the listing's JSON, and its digest as the event id."""

    id: str
    data: str
    event: str = "slots"


@dataclass(eq=False, slots=True)
class Watch:
    """One open stream: which provider (and the provider's user) it follows, and whether a
    change was heard since it last looked."""

    ids: tuple[uuid.UUID, uuid.UUID]
    stirred: asyncio.Event = field(default_factory=asyncio.Event)


class SlotStreams:
    """This worker's live listings."""

    def __init__(
        self,
        listings: SlotListings,
        *,
        limit: int,
        refresh_seconds: float = 30.0,
        max_seconds: float = 3600.0,
    ) -> None:
        self.listings = listings
        self.limit = limit
        self.refresh_seconds = refresh_seconds
        self.max_seconds = max_seconds
        self._watching: dict[uuid.UUID, set[Watch]] = {}
        self._open = 0
        self._poller: asyncio.Task[None] | None = None
        self._closing = 0  # ticks when the worker ends its streams (aclose)
        listings.cache.on_change = self.stir

    @property
    def open_streams(self) -> int:
        return self._open

    def stir(self, ids: Iterable[uuid.UUID] | None) -> None:
        """Changes concerning these providers or users (None: anything) were heard."""
        if ids is None:
            for watches in self._watching.values():
                for watch in watches:
                    watch.stirred.set()
            return
        for changed in ids:
            for watch in self._watching.get(changed, ()):
                watch.stirred.set()

    async def first(self, ref: str, query: SlotQuery, now: datetime) -> SlotAnswer:
        """The listing a stream starts with; its errors (an unknown provider, a bad window)
        are the listing's, answered before any event is sent."""
        if self._open >= self.limit:
            raise TooManyStreams(details={"limit": self.limit})
        return await self.listings.answer(ref, query, now)

    async def events(
        self,
        ref: str,
        query: SlotQuery,
        first: SlotAnswer,
        *,
        clock: Callable[[], datetime],
        last_event_id: str | None,
    ) -> AsyncIterator[Event]:
        """The listing now (unless the client has it: ``last_event_id``), then again at
        each change, until the client goes, the worker stops or ``max_seconds`` have passed
        (a client reconnects, to whichever worker: long-lived connections rebalance)."""
        watch = self._watch((first.provider_id, first.user_id))
        closing = self._closing
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self.max_seconds
        try:
            sent = last_event_id
            answer: SlotAnswer | None = first
            while True:
                if answer is not None:
                    body = answer.body(clock())
                    digest = _digest(body)
                    if digest != sent:
                        sent = digest
                        yield Event(id=digest, data=body.decode())
                left = ends_at - loop.time()
                if left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.refresh_seconds, left)):
                        await watch.stirred.wait()
                watch.stirred.clear()
                if self._closing != closing or loop.time() >= ends_at:
                    return
                try:
                    answer = await self.listings.answer(ref, query, clock())
                except AppError as error:  # the provider is gone, or the service listed
                    gone = ErrorBody(
                        code=error.code, message=error.detail_message, details=error.details
                    )
                    yield Event(id="", data=gone.model_dump_json(), event="gone")
                    return
        finally:
            self._unwatch(watch)

    def _watch(self, ids: tuple[uuid.UUID, uuid.UUID]) -> Watch:
        watch = Watch(ids)
        for one in ids:
            self._watching.setdefault(one, set()).add(watch)
        self._open += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        return watch

    def _unwatch(self, watch: Watch) -> None:
        self._open -= 1
        for one in watch.ids:
            watches = self._watching.get(one)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watching[one]

    async def _poll(self) -> None:
        """While streams are open: hear other processes' changes though no request asks."""
        while self._open > 0:
            watch = self.listings.watch
            if watch is not None:
                try:
                    watch.ready()
                except Exception:  # never let the poller die silently; the next try may work
                    log.warning("slot_stream_poll_failed", exc_info=True)
            await asyncio.sleep(POLL_SECONDS)

    async def aclose(self) -> None:
        """Every open stream ends (the worker stops)."""
        self._closing += 1
        self.stir(None)
        poller, self._poller = self._poller, None
        if poller is not None and not poller.done():
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller


def _digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=12).hexdigest()


def clock_from(now: datetime, loop: asyncio.AbstractEventLoop) -> Callable[[], datetime]:
    """The request's `now`, moving on with the loop's monotonic clock."""
    started = loop.time()
    return lambda: now + timedelta(seconds=loop.time() - started)
